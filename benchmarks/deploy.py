"""Deploying a 1-node stack with two services: kombify vs the raw steps it orchestrates.

What is measured, in one run (every figure is wall-clock seconds on this machine):

kombify deploy
    From the API request that stores the kombination and starts ``DeployKombination`` until
    the workflow has finished (its result arrives over Temporal), through the real stack: a
    Temporal dev server on free 127.0.0.1 ports, the API app in this process (ASGI, no
    socket), a worker subprocess (``python -m kombify worker``), OpenTofu, SSH, the node agent
    (gRPC + mTLS through an SSH tunnel) and the node's Docker engine. The stack has one
    ``provider: sim`` node and two services (``kombify-test/httpd:1``, health-checked).
    The node (a KombiSim container) is created *before* the clock starts, with the very spec
    kombify would use, and the clock starts only once the node's own dockerd answers (the
    same for the baseline's node), so node start-up is outside both figures (it is printed
    on its own); kombify's ``PrepareDeployment`` still finds the node and waits for an SSH
    handshake, and that is counted. Round 1 is the worker's first deploy (cold: the agent
    bundle is probed, hashed and packed in a fresh KOMBIFY_HOME, imports warm up); later
    rounds use the same worker (warm). Each round uses a new stack and a new node, so every
    deploy installs the agent and ships the image to an empty node.
no-change re-apply
    The same kombination deployed again on that node: plan 0/0/0, every service unchanged.
raw steps (the baseline)
    What a person would type to get the same result on a fresh node of the same spec,
    timed step by step: ``init`` and ``apply -auto-approve`` of the OpenTofu configuration
    kombify generated for the round's stack (its work dir ``KOMBIFY_HOME/stacks/local/<stack>/
    tofu`` copied to a new dir, without state, lock or plan files; only the node endpoint
    variables, ``-var node_box_{host,port,identity_file}``, point at the fresh node, so the
    config itself is byte-for-byte the same); then, over one SSH connection, ``docker save``
    on the host piped into ``sudo docker load`` on the node (the node is offline: kombify
    ships the image the same way), ``docker run -d -p ...`` of the two containers with the
    same env and ports, and polling both services with curl *inside the node* until they
    answer. A fresh node rather than ``apply`` after ``destroy`` on kombify's node: the
    bootstrap and the Docker state would otherwise be warm for the baseline only.

The overhead ratio is kombify deploy / raw steps (goal: within 1.5x, judged on the median of
the warm rounds against the median raw figure; the cold ratio is printed too); the re-apply
goal is under 5 s, judged on the worst round. Per deploy, a breakdown shows where kombify's
time goes: the workflow's progress query (steps with started_at/finished_at, which the
workflow stores to the second only), and the workflow history's event times (millisecond
precision) for each activity: time queued (scheduled -> started) and time running (started
-> closed), plus what lies outside the activities (workflow tasks, the API request, result
delivery). A last line per round puts
kombify's OpenTofu and rollout activities next to their raw counterparts and lists what only
kombify does (prepare, agent install, record, workflow and API).

Everything it needs is started here and removed at the end: a temp KOMBIFY_HOME, the Temporal
dev server, the worker, uniquely named simulations (``kombify.sim.delete_simulation``). It
talks to 127.0.0.1 only. Loops are bounded in count and time.

Usage: .venv/bin/python benchmarks/deploy.py [--rounds 5] [--keep-home]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import asyncssh
from _setup import bench_home, images, tests_support, wait_for_worker

from kombify import sim
from kombify.sim.models import NodeSpec, SimulationSpec, SshEndpoint
from kombify.tofu import find_tofu_binary

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowHistory

    from tests.support.deploy_env import KombifyEnv

NODE = "box"
PORTS = {"web": 8080, "notes": 8081}
GREETING = "hello"
OVERHEAD_GOAL = 1.5
REAPPLY_GOAL = 5.0
DEPLOY_TIMEOUT = 300.0
STEP_TIMEOUT = 180.0



# ---- results ------------------------------------------------------------------------------


@dataclass
class ActivityTiming:
    """One activity execution as the workflow history records it."""

    name: str
    queued: float
    ran: float
    attempt: int


@dataclass
class DeployTiming:
    """One kombify deploy: the client's figure and where the time went."""

    total: float
    state: str
    steps: list[tuple[str, str, float | None]]  # name, state, seconds (1 s resolution)
    workflow_span: float
    activities: list[ActivityTiming]
    plan: dict[str, int]
    services: dict[str, str]


@dataclass
class RawTiming:
    """The raw steps on a fresh node."""

    parts: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        """Sum of the timed steps."""
        return sum(self.parts.values())


@dataclass
class Round:
    """What one round measured."""

    label: str
    node_create: float
    deploy: DeployTiming
    reapply: DeployTiming
    raw_node_create: float
    raw: RawTiming
    node_cpu: float | None = None  # CPU seconds the node spent during kombify's deploy
    raw_node_cpu: float | None = None  # ... and during the raw steps


# ---- set-up -------------------------------------------------------------------------------


def _node_spec(sim_name: str) -> SimulationSpec:
    """The simulation kombify's PrepareDeployment would create for the stack."""
    node = NodeSpec(
        name=NODE, group="lan", type="local", role="main", cpus=1.0, memory_mb=512,
        ports=sorted(PORTS.values()),
    )
    return SimulationSpec(name=sim_name, nodes=[node], description=f"rehearsal of {sim_name}")


def _create_node(sim_name: str, created: list[str]) -> tuple[SshEndpoint, float]:
    created.append(sim_name)
    started = time.monotonic()
    info = sim.create_simulation(sim_name, _node_spec(sim_name), wait=True, timeout=120)
    (ssh,) = [n.ssh for n in info.nodes if n.ssh is not None]
    asyncio.run(_run_on(ssh, _DOCKERD_UP, timeout=60))
    return ssh, time.monotonic() - started


_DOCKERD_UP = (
    "for i in $(seq 300); do sudo -n docker info >/dev/null 2>&1 && exit 0; sleep 0.1; done; exit 1"
)


def _connect(ssh: SshEndpoint) -> asyncssh.SSHClientConnectionOptions:
    """How to log in to a node: its key, no agent, no user config, host key not checked."""
    return asyncssh.SSHClientConnectionOptions(
        username=ssh.user,
        client_keys=[ssh.identity_file],
        known_hosts=None,
        agent_path=None,
        config=[],
    )


async def _run_on(ssh: SshEndpoint, command: str, *, timeout: float) -> None:
    async with asyncssh.connect(ssh.host, ssh.port, options=_connect(ssh)) as conn:
        await conn.run(command, check=True, timeout=timeout)


# ---- kombify ------------------------------------------------------------------------------


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _activities(history: WorkflowHistory) -> tuple[float, list[ActivityTiming]]:
    """The workflow's span and each activity's queue and run time, from event times."""
    from temporalio.api.enums.v1 import EventType

    scheduled: dict[int, tuple[str, datetime]] = {}
    started: dict[int, tuple[datetime, int]] = {}
    found: list[ActivityTiming] = []
    closing = {
        EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity_task_completed_event_attributes",
        EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed_event_attributes",
        EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out_event_attributes",
    }
    events = list(history.events)
    for event in events:
        at = event.event_time.ToDatetime()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = (attrs.activity_type.name, at)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            s_attrs = event.activity_task_started_event_attributes
            started[s_attrs.scheduled_event_id] = (at, s_attrs.attempt)
        elif event.event_type in closing:
            ref = getattr(event, closing[event.event_type]).scheduled_event_id
            name, queued_at = scheduled[ref]
            began, attempt = started.get(ref, (queued_at, 1))
            found.append(
                ActivityTiming(
                    name=name,
                    queued=(began - queued_at).total_seconds(),
                    ran=(at - began).total_seconds(),
                    attempt=attempt,
                )
            )
    span = (events[-1].event_time.ToDatetime() - events[0].event_time.ToDatetime()).total_seconds()
    return span, found


async def _deploy(env: KombifyEnv, client: Client, source: str) -> DeployTiming:
    """Store + start through the API, wait for the workflow's result; the figures."""
    started = time.monotonic()
    run = await env.start(source)
    handle = client.get_workflow_handle(run["workflow_id"])
    await asyncio.wait_for(handle.result(), timeout=DEPLOY_TIMEOUT)
    total = time.monotonic() - started
    final = await env.call("GET", f"/v1/deployments/{run['id']}")
    progress = final.get("progress") or {}
    steps = [
        (s["name"], s["state"], _seconds(s.get("started_at"), s.get("finished_at")))
        for s in progress.get("steps", [])
    ]
    span, activities = _activities(await handle.fetch_history())
    nodes = progress.get("nodes") or [{}]
    return DeployTiming(
        total=total,
        state=final["state"],
        steps=steps,
        workflow_span=span,
        activities=activities,
        plan=dict(progress.get("plan") or {}),
        services=dict(nodes[0].get("services") or {}),
    )


# ---- raw steps ----------------------------------------------------------------------------


def _copy_config(workdir: Path, target: Path) -> None:
    """The generated configuration without state, lock, plan or provider dirs."""
    shutil.copytree(
        workdir,
        target,
        ignore=shutil.ignore_patterns(".*", "terraform.tfstate*", "*.tfplan"),
    )


def _tofu_env(home: Path) -> dict[str, str]:
    cli_config = home / "baseline.tfrc"
    cli_config.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "CHECKPOINT_"))}
    env.update(TF_IN_AUTOMATION="1", TF_INPUT="0", CHECKPOINT_DISABLE="1")
    env["TF_CLI_CONFIG_FILE"] = str(cli_config)
    return env


def _timed_command(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:2])} failed:\n{done.stdout[-2000:]}{done.stderr}")
    return time.monotonic() - started


_READY = (
    "for i in $(seq 600); do "
    "curl -fsS -o /dev/null -m 1 http://127.0.0.1:{web}/ && "
    "curl -fsS -o /dev/null -m 1 http://127.0.0.1:{notes}/ && exit 0; "
    "sleep 0.05; done; exit 1"
)


async def _raw_docker(ssh: SshEndpoint, image: str, raw: RawTiming) -> None:
    """Ship the image, `docker run` both services, poll until both answer inside the node."""
    started = time.monotonic()
    async with asyncssh.connect(ssh.host, ssh.port, options=_connect(ssh)) as conn:
        raw.parts["ssh connect"] = time.monotonic() - started

        started = time.monotonic()
        saved = await asyncio.to_thread(
            subprocess.run, ["docker", "save", image], capture_output=True, check=True,
            timeout=STEP_TIMEOUT,
        )
        await conn.run("sudo docker load", input=saved.stdout, encoding=None, check=True,
                       timeout=STEP_TIMEOUT)
        raw.parts["docker save | load"] = time.monotonic() - started

        started = time.monotonic()
        runs = " && ".join(
            f"sudo docker run -d --name {name} -p {port}:80"
            + (f" -e GREETING={GREETING}" if name == "web" else "")
            + f" {image}"
            for name, port in PORTS.items()
        )
        await conn.run(runs, check=True, timeout=STEP_TIMEOUT)
        raw.parts["docker run x2"] = time.monotonic() - started

        started = time.monotonic()
        await conn.run(_READY.format(**PORTS), check=True, timeout=60)
        raw.parts["until HTTP answers"] = time.monotonic() - started


def _pin_raw_node(work: Path, ssh: SshEndpoint) -> None:
    """The copied configuration verifies the host key of the node it was made for: point it
    at the raw steps' own node, as an owner states a node's key (``ssh.hostKey``)."""
    from kombify.activities.hostkeys import read_host_key

    key = asyncio.run(read_host_key(ssh.host, ssh.port)).line
    config = work / "main.tf.json"
    data = json.loads(config.read_text())
    for resource in data["resource"]["terraform_data"].values():
        if "host_key" in resource.get("connection", {}):
            resource["connection"]["host_key"] = key
    config.write_text(json.dumps(data))


def _raw_steps(workdir: Path, base: Path, ssh: SshEndpoint, image: str) -> RawTiming:
    raw = RawTiming()
    tofu = find_tofu_binary()
    work = base / "tofu"
    _copy_config(workdir, work)
    _pin_raw_node(work, ssh)
    env = _tofu_env(base)
    endpoint = [
        "-var", f"node_{NODE}_host={ssh.host}",
        "-var", f"node_{NODE}_port={ssh.port}",
        "-var", f"node_{NODE}_identity_file={ssh.identity_file}",
    ]
    raw.parts["tofu init"] = _timed_command([tofu, "init", "-input=false", "-no-color"], work, env)
    raw.parts["tofu apply"] = _timed_command(
        [tofu, "apply", "-auto-approve", "-input=false", "-no-color", *endpoint], work, env
    )
    asyncio.run(_raw_docker(ssh, image, raw))
    return raw


def _node_cpu(sim_name: str) -> float | None:
    """CPU seconds the node's container has used so far (its cgroup), None if unreadable.

    The nodes have one CPU each, so work that kombify runs side by side on a node queues for
    it: this shows how much work each side asks of the node, apart from how it is arranged.
    """
    name = f"kombisim-{sim_name}-{NODE}"
    found = subprocess.run(
        ["docker", "inspect", "-f", "{{.Id}}", name], capture_output=True, text=True, check=False
    )
    cid = found.stdout.strip()
    if not cid:
        return None
    v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage")
    if v1.exists():
        return int(v1.read_text()) / 1e9
    v2 = Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat")
    if v2.exists():
        usage = dict(line.split() for line in v2.read_text().splitlines())
        return int(usage["usage_usec"]) / 1e6
    return None


def _cpu_used(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


# ---- the run ------------------------------------------------------------------------------


async def _kombify_round(
    env: KombifyEnv, client: Client, stack: str, created: list[str]
) -> tuple[float, DeployTiming, DeployTiming, float | None]:
    _, node_create = await asyncio.to_thread(_create_node, stack, created)
    from tests.support.kombinations import one_node  # the e2e deploy tests' stack

    source = one_node(stack, greeting=GREETING)
    cpu_before = _node_cpu(stack)
    deploy = await _deploy(env, client, source)
    node_cpu = _cpu_used(cpu_before, _node_cpu(stack))
    if deploy.state != "succeeded":
        raise RuntimeError(f"deploy of {stack} ended {deploy.state}; see {env.worker_log}")
    reapply = await _deploy(env, client, source)
    if reapply.state != "succeeded":
        raise RuntimeError(f"re-apply of {stack} ended {reapply.state}; see {env.worker_log}")
    return node_create, deploy, reapply, node_cpu


async def _measure(home: Path, address: str, rounds: int, image: str) -> list[Round]:
    from temporalio.client import Client

    from tests.support.deploy_env import KombifyEnv

    env = KombifyEnv(home, address)
    created: list[str] = []
    results: list[Round] = []
    try:
        env.start_worker()
        client = await Client.connect(address)
        await wait_for_worker(client, env.settings.task_queue)
        for index in range(rounds):
            tag = secrets.token_hex(3)
            stack, baseline = f"kbd-{tag}", f"kbr-{tag}"
            node_create, deploy, reapply, node_cpu = await _kombify_round(
                env, client, stack, created
            )
            workdir = home / "stacks" / "local" / stack / "tofu"
            ssh, raw_create = await asyncio.to_thread(_create_node, baseline, created)
            base = home / "baseline" / baseline
            base.mkdir(parents=True)
            raw_cpu_before = _node_cpu(baseline)
            raw = await asyncio.to_thread(_raw_steps, workdir, base, ssh, image)
            raw_cpu = _cpu_used(raw_cpu_before, _node_cpu(baseline))
            label = "1 (cold worker)" if index == 0 else f"{index + 1} (warm worker)"
            results.append(
                Round(label, node_create, deploy, reapply, raw_create, raw, node_cpu, raw_cpu)
            )
            for name in (stack, baseline):  # one live node pair at a time
                await asyncio.to_thread(sim.delete_simulation, name)
                created.remove(name)
            _print_round(results[-1])
    finally:
        await env.close()
        for name in created:
            await asyncio.to_thread(sim.delete_simulation, name)
    return results


# ---- output -------------------------------------------------------------------------------


def _print_deploy(title: str, timing: DeployTiming) -> None:
    print(f"  {title}: {timing.total:.2f} s ({timing.state}; plan {timing.plan}, "
          f"services {timing.services})")
    steps = "  ".join(
        f"{name} {'-' if secs is None else f'{secs:.0f}'}"
        + ("" if state == "done" else f" ({state})")
        for name, state, secs in timing.steps
    )
    print(f"    progress query steps, s (1 s resolution): {steps}")
    in_activities = 0.0
    for act in timing.activities:
        retry = f"  (attempt {act.attempt})" if act.attempt > 1 else ""
        print(f"    {act.name:<20} queued {act.queued:6.3f}  ran {act.ran:6.2f}{retry}")
        in_activities += act.queued + act.ran
    print(
        f"    workflow span {timing.workflow_span:.2f} s = activities {in_activities:.2f} "
        f"+ workflow tasks and gaps {timing.workflow_span - in_activities:.2f}; "
        f"outside the workflow (API store/start, result delivery) "
        f"{timing.total - timing.workflow_span:.2f}"
    )


def _attribution(r: Round) -> str:
    """kombify's deploy split into parts with a raw counterpart and parts without one."""
    by_name: dict[str, float] = {}
    for act in r.deploy.activities:
        by_name[act.name] = by_name.get(act.name, 0.0) + act.queued + act.ran
    tofu = by_name.pop("TofuPlan", 0.0) + by_name.pop("TofuApply", 0.0)
    services = by_name.pop("RolloutServices", 0.0)
    raw_tofu = r.raw.parts["tofu init"] + r.raw.parts["tofu apply"]
    raw_services = r.raw.total - raw_tofu
    own = r.deploy.total - tofu - services
    listed = "  ".join(f"{name} {secs:.2f}" for name, secs in by_name.items())
    return (
        f"OpenTofu {tofu:.2f} vs {raw_tofu:.2f} raw; services {services:.2f} vs "
        f"{raw_services:.2f} raw; kombify-only {own:.2f} ({listed}; "
        f"workflow/API {own - sum(by_name.values()):.2f})"
    )


def _print_round(r: Round) -> None:
    print(f"\nround {r.label}  (node creation, not counted: kombify's {r.node_create:.2f} s, "
          f"baseline's {r.raw_node_create:.2f} s)")
    _print_deploy("kombify deploy", r.deploy)
    _print_deploy("kombify no-change re-apply", r.reapply)
    parts = "  ".join(f"{k} {v:.2f}" for k, v in r.raw.parts.items())
    print(f"  raw steps: {r.raw.total:.2f} s  ({parts})")
    print(f"  overhead this round: {r.deploy.total / r.raw.total:.2f}x")
    print(f"  where kombify's deploy differs, s: {_attribution(r)}")
    if r.node_cpu is not None and r.raw_node_cpu is not None:
        print(
            f"  the node's CPU time: kombify {r.node_cpu:.2f} s, "
            f"raw steps {r.raw_node_cpu:.2f} s"
        )


def _summary(results: list[Round]) -> None:
    raw = statistics.median(r.raw.total for r in results)
    cold = results[0].deploy.total
    warm_runs = [r.deploy.total for r in results[1:]]
    reapplies = [r.reapply.total for r in results]
    rows: list[tuple[str, float, str]] = [
        ("raw steps (tofu init+apply, image load, docker run x2, HTTP up)", raw, ""),
        ("kombify deploy, cold worker (round 1)", cold, f"overhead {cold / raw:.2f}x"),
    ]
    verdict = cold / raw
    if warm_runs:
        warm = statistics.median(warm_runs)
        verdict = warm / raw
        rows.append(
            (f"kombify deploy, warm worker (median of {len(warm_runs)})", warm,
             f"overhead {warm / raw:.2f}x")
        )
    rows.append(
        (f"kombify no-change re-apply (median; worst {max(reapplies):.2f})",
         statistics.median(reapplies), "")
    )
    print(f"\nsummary ({len(results)} round(s), seconds, medians over rounds)")
    for label, value, note in rows:
        print(f"  {label:<66}{value:7.2f}   {note}")
    which = "warm" if warm_runs else "cold"
    print(
        f"  goal: overhead within {OVERHEAD_GOAL:.2f}x ({which} worker): "
        f"{verdict:.2f}x {'met' if verdict <= OVERHEAD_GOAL else 'MISSED'}"
    )
    print(
        f"  goal: no-change re-apply under {REAPPLY_GOAL:.0f} s (worst round): "
        f"{max(reapplies):.2f} s {'met' if max(reapplies) < REAPPLY_GOAL else 'MISSED'}"
    )


def main() -> None:
    """Set up, measure, print, clean up."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="round 1 is the cold worker")
    parser.add_argument("--keep-home", action="store_true", help="keep the temp KOMBIFY_HOME")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 10:
        parser.error("--rounds must be between 1 and 10")

    with bench_home("kombify-bench-deploy-", keep=args.keep_home) as home:
        node_image, image = images()
        tofu = find_tofu_binary()
        version = subprocess.run([tofu, "version", "-json"], capture_output=True, text=True,
                                 check=True, timeout=60).stdout
        print(f"node image {node_image}, service image {image}, "
              f"{Path(tofu).name} {json.loads(version)['terraform_version']}, "
              f"{os.cpu_count()} CPUs, home {home}")
        tests_support()
        from tests.support.temporal import running_temporal

        with running_temporal(home / "temporal") as address:
            results = asyncio.run(_measure(home, address, args.rounds, image))
        _summary(results)


if __name__ == "__main__":
    main()
