"""A real CLI accepts what the unifier writes: `init -backend=false` + `validate` per kit.

Only configurations without external providers can be checked this way here (no provider can
be downloaded); cloud configurations are checked structurally in the unit tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from kombify.cli.stackkit import scaffold
from kombify.specs import Kombination, load_kombination
from kombify.specs.validate import with_defaults
from kombify.stackkits import KIT_NAMES
from kombify.unifier import unify, write_plan

CLI = shutil.which("tofu") or shutil.which("terraform")
pytestmark = pytest.mark.skipif(CLI is None, reason="needs tofu or terraform")
DATA = Path(__file__).resolve().parents[3] / "tests" / "data" / "spec" / "examples"


def _run(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CLI is not None
    # No update check (it would call the internet), no user CLI config.
    env = {
        **os.environ,
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
        "TF_CLI_CONFIG_FILE": "/dev/null",
    }
    return subprocess.run(
        [CLI, *args, "-no-color"], cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )


def _local_only(kit: str) -> str:
    text = scaffold(kit, "lab", "sim", 4, [])
    if kit == "cloud-hybrid":  # the edge becomes a sim node: the config then needs no provider
        text = text.replace("provider: hetzner", "provider: sim")
    return text


CASES = [(f"{kit}-{fmt}", _local_only(kit), fmt) for kit in KIT_NAMES for fmt in ("json", "hcl")]
CASES += [
    (f"{p.stem}-json", p.read_text(), "json")
    for p in sorted(DATA.glob("*.yaml"))
    if p.stem in ("base-homelab", "ha-homelab", "sim-single")
]


@pytest.mark.parametrize(("text", "fmt"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_cli_validates_generated_config(tmp_path: Path, text: str, fmt: str) -> None:
    if "provider: hetzner" in text or "cloud-hybrid" not in text:
        k = load_kombination(text)
    else:
        # cloud-hybrid with its edge simulated breaks the kit's "one cloud node" rule on purpose
        # (so no provider is needed); the model itself is still checked.
        k = Kombination.model_validate(with_defaults(yaml.safe_load(text)))
    plan = unify(k)
    write_plan(plan, tmp_path, fmt="hcl" if fmt == "hcl" else "json")
    init = _run(tmp_path, "init", "-backend=false", "-input=false")
    assert init.returncode == 0, init.stderr
    checked = _run(tmp_path, "validate")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "The configuration is valid" in checked.stdout
