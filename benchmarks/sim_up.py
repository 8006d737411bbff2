"""How long until N simulated nodes accept SSH: kombify vs a plain `docker run` baseline.

Both sides use the same node image and the same container settings (also what a `local`
node boots: sshd, dockerd, and avahi for mDNS, since KOMBIFY_MDNS=1). The baseline runs
`docker run -d` (the CLI) for N containers at once and polls each published port on
127.0.0.1 until the SSH banner arrives; kombify's figure is `kombify.sim.create_simulation`
end to end (key pair, network, volumes, containers, and a full SSH handshake with key login
on every node). Figures are medians of a few rounds measured in the same run.

The ratio is against the plain `docker run` on Docker's default bridge, as the goal is stated.
A second baseline, `net`, also runs `docker network create` and puts the nodes on that network
(as kombify puts a simulation on its own LAN): the network's cost (its creation, and Docker's
embedded DNS set up at each start) shows as the difference between the two baselines, and
`vs net` is kombify's overhead with networking counted on both sides. It is printed for
information; the goal is measured against the plain one.

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


def _docker_run(image: str, name: str, public_key: str, network: str | None = None) -> str:
    command = ["docker", "run", "-d", "--name", name, "--init", "--cgroupns", "host"]
    if network:
        command += ["--network", network]
    for cap in NODE_CAPABILITIES:
        command += ["--cap-add", cap]
    for opt in (*NODE_SECURITY_OPTS, "systempaths=unconfined"):
        command += ["--security-opt", opt]
    command += [
        "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", "/var/lib/docker", "-v", "/var/lib/kombify",
        "-p", "127.0.0.1::22", "--cpus", "1", "--memory", "512m",
        "-e", f"KOMBIFY_AUTHORIZED_KEY={public_key}", "-e", "KOMBIFY_MDNS=1",
        "--label", "io.kombify.bench=1",
        image,
    ]
    subprocess.run(command, check=True, capture_output=True)
    port = subprocess.run(
        ["docker", "port", name, "22/tcp"], check=True, capture_output=True, text=True
    ).stdout.split(":")[-1]
    return port.strip()


def baseline(image: str, count: int, public_key: str, *, network: bool = False) -> float:
    """Seconds until `count` plain `docker run` nodes send their SSH banner.

    With ``network``, a fresh bridge network is created first and the nodes run on it.
    """
    prefix = f"kbench-{secrets.token_hex(3)}"
    names = [f"{prefix}-{i}" for i in range(count)]
    net = f"{prefix}-net" if network else None
    started = time.monotonic()
    try:
        if net:
            subprocess.run(["docker", "network", "create", net], check=True, capture_output=True)
        with ThreadPoolExecutor(max_workers=count) as pool:
            ports = list(pool.map(lambda n: _docker_run(image, n, public_key, net), names))
            deadline = time.monotonic() + 120
            list(pool.map(lambda p: _banner(int(p), deadline), ports))
        return time.monotonic() - started
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", *names], capture_output=True, check=False)
        if net:
            subprocess.run(["docker", "network", "rm", net], capture_output=True, check=False)


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
    print(
        f"{'nodes':>5}  {'docker run':>10}  {'kombify':>8}  {'ratio':>5}"
        f"  {'(net':>6}  {'vs net)':>7}"
    )
    worst = 0.0
    for count in args.nodes:
        base_runs, net_runs, kombify_runs = [], [], []
        for _ in range(args.rounds):  # interleaved, so all see the same machine load
            base_runs.append(baseline(image, count, public_key))
            kombify_runs.append(kombify_up(count))
            net_runs.append(baseline(image, count, public_key, network=True))
        base, ours = statistics.median(base_runs), statistics.median(kombify_runs)
        net = statistics.median(net_runs)
        worst = max(worst, ours / base)
        print(
            f"{count:>5}  {base:>10.2f}  {ours:>8.2f}  {ours / base:>5.2f}x"
            f"  {net:>6.2f}  {ours / net:>6.2f}x"
        )
    print(f"worst ratio {worst:.2f}x (goal: within 1.50x)")


if __name__ == "__main__":
    main()
