"""Validate + generate a 200-node ha-homelab kombination; compare with the CLI's `validate`.

Run: .venv/bin/python benchmarks/unify_200.py   (goal: well under 1 s for kombify's part)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kombify.specs import KombinationError, load_kombination
from kombify.unifier import unify, write_plan

NODES = 200


def kombination(nodes: int) -> str:
    lines = [
        "apiVersion: kombify.io/v1",
        "kind: Kombination",
        "metadata: {name: big-swarm}",
        "spec:",
        "  stackkit: ha-homelab",
        "  nodes:",
    ]
    for i in range(nodes):
        role = "manager" if i < 5 else "worker"
        lines.append(
            f"    - {{name: n{i:03d}, provider: local, role: {role},"
            f" address: 10.1.{i // 250}.{i % 250 + 1}, resources: {{cpus: 2, memory: 4Gi}}}}"
        )
    lines.append("  services:")
    for i in range(50):
        lines.append(
            f"    app{i:02d}: {{image: 'nginx:1.27',"
            f" ports: [{{container: 80, host: {10000 + i}}}]}}"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    text = kombination(NODES)
    with tempfile.TemporaryDirectory(prefix="kombify-bench-") as tmp:
        workdir = Path(tmp)
        start = time.perf_counter()
        try:
            k = load_kombination(text)  # validates: schema + StackKit rules
        except KombinationError as exc:
            raise SystemExit(f"benchmark input is invalid: {exc}") from exc
        plan = unify(k)
        write_plan(plan, workdir)
        ours = time.perf_counter() - start  # cold: includes reading StackKit data and schema
        warm = []
        for _ in range(3):
            start = time.perf_counter()
            write_plan(unify(load_kombination(text)), workdir)
            warm.append(time.perf_counter() - start)
        print(
            f"kombify validate + generate, {NODES} nodes: {ours:.3f} s cold, "
            f"{min(warm):.3f} s warm ({len(plan.files)} files)"
        )
        cli = shutil.which("tofu") or shutil.which("terraform")
        if cli is None:
            print("no tofu/terraform on PATH: no ratio")
            return 0 if ours < 1.0 else 1
        env = {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}
        run = {"cwd": workdir, "env": env, "capture_output": True, "check": True}
        subprocess.run([cli, "init", "-backend=false", "-input=false", "-no-color"], **run)  # type: ignore[call-overload]
        start = time.perf_counter()
        subprocess.run([cli, "validate", "-no-color"], **run)  # type: ignore[call-overload]
        theirs = time.perf_counter() - start
        print(f"{Path(cli).name} validate of the same output: {theirs:.3f} s")
        print(f"ratio kombify / {Path(cli).name} validate: {ours / theirs:.2f}")
    return 0 if ours < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
