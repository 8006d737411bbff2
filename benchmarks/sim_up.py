"""How long until N simulated nodes accept SSH: kombify vs a plain `docker run` baseline.

Both sides use the same node image and the same container settings. The baseline runs
`docker run -d` (the CLI) for N containers at once and polls each published port on
127.0.0.1 until the SSH banner arrives; kombify's figure is `kombify.sim.create_simulation`
end to end (key pair, network, volumes, containers, and a full SSH handshake with key login
on every node). Figures are medians of a few rounds measured in the same run.

Usage: .venv/bin/python benchmarks/sim_up.py [--rounds 3] [--nodes 1 5]
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from kombify import sim
from kombify.settings import get_settings
from kombify.sim.engine import NODE_CAPABILITIES, NODE_SECURITY_OPTS
from kombify.sim.keys import ensure_keys


def _banner(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.settimeout(1)
                if conn.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"no SSH banner on 127.0.0.1:{port}")


def _docker_run(image: str, name: str, public_key: str) -> str:
    command = ["docker", "run", "-d", "--name", name, "--init", "--cgroupns", "host"]
    for cap in NODE_CAPABILITIES:
        command += ["--cap-add", cap]
    for opt in (*NODE_SECURITY_OPTS, "systempaths=unconfined"):
        command += ["--security-opt", opt]
    command += [
        "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", "/var/lib/docker",
        "-p", "127.0.0.1::22", "--cpus", "1", "--memory", "512m",
        "-e", f"KOMBIFY_AUTHORIZED_KEY={public_key}", "--label", "io.kombify.bench=1",
        image,
    ]
    subprocess.run(command, check=True, capture_output=True)
    port = subprocess.run(
        ["docker", "port", name, "22/tcp"], check=True, capture_output=True, text=True
    ).stdout.split(":")[-1]
    return port.strip()


def baseline(image: str, count: int, public_key: str) -> float:
    """Seconds until `count` plain `docker run` nodes send their SSH banner."""
    names = [f"kbench-{secrets.token_hex(3)}-{i}" for i in range(count)]
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=count) as pool:
            ports = list(pool.map(lambda n: _docker_run(image, n, public_key), names))
            deadline = time.monotonic() + 120
            list(pool.map(lambda p: _banner(int(p), deadline), ports))
        return time.monotonic() - started
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", *names], capture_output=True, check=False)


def kombify_up(count: int) -> float:
    """Seconds for `create_simulation` of `count` nodes, SSH handshakes included."""
    name = f"kbench-{secrets.token_hex(3)}"
    started = time.monotonic()
    try:
        sim.create_simulation(name, count, timeout=120)
        return time.monotonic() - started
    finally:
        sim.delete_simulation(name)


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 5])
    args = parser.parse_args()
    os.environ.setdefault("KOMBIFY_HOME", tempfile.mkdtemp(prefix="kombify-bench-"))
    get_settings.cache_clear()
    image = sim.ensure_image(progress=print)
    public_key = ensure_keys("kbench-baseline").public_key
    print(f"image {image}, {args.rounds} rounds, median seconds until every node accepts SSH")
    print(f"{'nodes':>5}  {'docker run':>10}  {'kombify':>8}  {'ratio':>5}")
    worst = 0.0
    for count in args.nodes:
        base_runs, kombify_runs = [], []
        for _ in range(args.rounds):  # interleaved, so both see the same machine load
            base_runs.append(baseline(image, count, public_key))
            kombify_runs.append(kombify_up(count))
        base, ours = statistics.median(base_runs), statistics.median(kombify_runs)
        worst = max(worst, ours / base)
        print(f"{count:>5}  {base:>10.2f}  {ours:>8.2f}  {ours / base:>5.2f}x")
    print(f"worst ratio {worst:.2f}x (goal: within 1.50x)")


if __name__ == "__main__":
    main()
