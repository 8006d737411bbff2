"""Self-healing: time to recovery of a killed container, a removed one and a stopped node.

What is measured, in one run (wall-clock seconds on this machine):

killed container (``exited``)
    ``sudo docker kill <web>`` on the node; kombify's HealNode (the agent's report stream)
    notices it and starts the same container again. Timed from the command's return until
    ``web`` answers HTTP 200 again.
removed container (``missing``)
    ``sudo docker rm -f <web>``; kombify creates it again from the manifest in effect.
the floor
    The same faults mended by hand on the same node in the same run: a bare container of the
    same image with the same spec (env, restart policy ``unless-stopped``, port 80 on a host
    port of its own) is killed and ``docker start``-ed, or removed and ``docker run -d``-ed,
    as the next command. Timed from the fault's return until it answers. Floor and kombify
    rounds alternate, so both see the same machine.
stopped node (``node-down``)
    The node's container is stopped (``SimEngine.stop``, as ``kombify sim stop``); kombify
    starts it again. Timed from the stop's return until ``web`` answers on the node's port
    published on 127.0.0.1 (the node is down: nothing can be run inside it). Its floor is a
    stack with healing switched off, whose node is stopped and then started by hand
    (``SimEngine.start``), likewise until ``web`` answers.

Where the service figures are taken: inside the node. One SSH command makes the fault, reads
the node's clock (``date +%s%N``) when the fault's command returns, polls
``curl http://127.0.0.1:PORT/`` every 50 ms and reads the clock again when it answers. That
is fairer than polling from the host: a bare container's port is not published to the host
(a simulated node publishes only its planned services' host ports), so the floor can only be
taken in the node, and kombify's figure taken the same way pays neither SSH round trips nor
the host's port forwarding that the floor does not pay. The incident's own
``time_to_recovery_s`` (from detection to the recovered health check, by the workflow's
clock) is printed beside it.

The stack: one ``provider: sim`` node (base-homelab, reverse proxy off) running ``web``
(``kombify-test/httpd:1``, port 80 on host 8080, an HTTP health check every 1 s). It is
deployed twice, as two stacks, with ``healing.every`` 5m and 10s: a container's recovery is
driven by the agent's report stream and must not depend on ``every``. The stopped node is
measured on the ``every: 10s`` stack. Between rounds, each incident is waited for until it is
recorded recovered, then ``POST /v1/stacks/{name}/heal`` (what ``kombify heal`` does) resets
the crash-loop memory: otherwise the 2nd failure in 10 minutes waits 2 s, the 3rd 4 s ...
and the 6th is given up on, by design (docs/healing.md, "Crash loops"); each round measures a
first failure. Then the next round waits until the node's WatchNode heartbeats again.

Goal (issue 10): kombify's median within 2x the floor's median plus 1 s, for both containers
cases and both values of ``every``. The stopped node has no goal; its figures are printed.

Everything it needs is started here and removed at the end, on failure and Ctrl-C too: a temp
KOMBIFY_HOME, the Temporal dev server, the worker, uniquely named simulations. It talks to
127.0.0.1 only. Loops are bounded in count and time.

Usage: .venv/bin/python benchmarks/heal.py [--rounds 5] [--node-rounds 3] [--keep-home]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncssh
import httpx
from _setup import bench_home, images, tests_support, wait_for_worker
from docker.errors import DockerException

from kombify.contracts.heal import heal_node_workflow_id
from kombify.sim import delete_simulation, docker_client
from kombify.sim.engine import SimEngine
from kombify.sim.labels import container_name

if TYPE_CHECKING:
    from temporalio.client import Client

    from tests.support.deploy_env import KombifyEnv

ORG = "local"
NODE = "box"
WEB_PORT = 8080  # the service's host port on the node
FLOOR_PORT = 18080  # the bare container's host port on the node
POLL_TRIES = 1200  # x (50 ms + a refused curl): about a minute at most
INCIDENT_TIMEOUT = 120.0
NODE_TIMEOUT = 180.0
DEPLOY_TIMEOUT = 300.0

# One SSH command: the fault, the node's clock when it returned, the mending command (the
# floor's; nothing for kombify), then curl every 50 ms until it answers: "t0 t1" in ns.
_TIMED = (
    "{fault} >/dev/null && t0=$(date +%s%N) && {mend} i=0; "
    "while [ $i -lt {tries} ]; do "
    "curl -fsS -o /dev/null -m 1 http://127.0.0.1:{port}/ 2>/dev/null "
    "&& {{ echo $t0 $(date +%s%N); exit 0; }}; "
    "sleep 0.05; i=$((i+1)); done; echo $t0 timeout; exit 1"
)
_UNTIL_UP = (
    "i=0; while [ $i -lt {tries} ]; do "
    "curl -fsS -o /dev/null -m 1 http://127.0.0.1:{port}/ 2>/dev/null && exit 0; "
    "sleep 0.05; i=$((i+1)); done; exit 1"
)


# ---- results ------------------------------------------------------------------------------


@dataclass
class Case:
    """One fault on one stack: kombify's rounds and the floor's."""

    case: str
    every: str
    kombify: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)
    incident: list[float | None] = field(default_factory=list)  # its own time_to_recovery_s
    actions: list[str] = field(default_factory=list)  # what the incident says was done
    # From the fault's return until kombify recorded the incident (negative: before).
    detected: list[float] = field(default_factory=list)
    stopping: list[float] = field(default_factory=list)  # how long the node took to stop
    goal: bool = True  # the issue sets a goal for this case

    def record(self, took: float, incident: dict[str, Any], fault_at: float) -> None:
        """One kombify round: the figure taken here, the incident kombify recorded, and
        when the fault's command returned (epoch seconds; the nodes share the host's clock)."""
        self.kombify.append(took)
        self.detected.append(_epoch(incident["detected_at"]) - fault_at)
        self.incident.append(incident["time_to_recovery_s"])
        self.actions.append(" / ".join(incident["actions"]))

    def line(self, index: int) -> str:
        """One round, as printed while the run goes."""
        ttr = self.incident[index]
        floor = f"floor {self.floor[index]:.3f} s, " if index < len(self.floor) else ""
        if index < len(self.stopping):
            floor += f"the stop took {self.stopping[index]:.1f} s, "
        return (
            f"  {self.case:<18} every {self.every:<4} round {index + 1}: "
            f"kombify {self.kombify[index]:.3f} s ({floor}"
            f"incident opened {self.detected[index]:+.3f} s after the fault, "
            f"incident time_to_recovery_s {'-' if ttr is None else f'{ttr:.3f}'}: "
            f"{self.actions[index]})"
        )


# ---- on the node --------------------------------------------------------------------------


async def _node_run(env: KombifyEnv, stack: str, command: str, timeout: float = 120) -> str:
    """Run ``command`` on the stack's node (host key pinned, as kombify holds it)."""
    return await asyncio.wait_for(env.on_node(stack, NODE, command), timeout)


def _epoch(stamp: str) -> float:
    """An API timestamp as epoch seconds (a naive one is UTC, as kombify stores it)."""
    at = datetime.fromisoformat(stamp)
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


async def _timed(
    env: KombifyEnv, stack: str, fault: str, mend: str, port: int
) -> tuple[float, float]:
    """When the fault's command returned (epoch seconds) and how long until ``port``
    answered from then, by the node's clock."""
    script = _TIMED.format(
        fault=fault, mend=f"{mend} >/dev/null &&" if mend else "", tries=POLL_TRIES, port=port
    )
    try:
        out = await _node_run(env, stack, script)
    except asyncssh.ProcessError as exc:
        raise RuntimeError(f"no answer on port {port} after `{fault}`: {exc.stdout!r}") from exc
    t0, t1 = (int(v) for v in out.split())
    return t0 / 1e9, (t1 - t0) / 1e9


async def _web_container(env: KombifyEnv, stack: str) -> str:
    (cid,) = (await env.containers(stack, NODE))["web"]
    return cid


def _floor_run(image: str, name: str) -> str:
    return (
        f"sudo docker run -d --name {name} --restart unless-stopped -e GREETING=hello "
        f"-p {FLOOR_PORT}:80 {image}"
    )


async def _floor_round(env: KombifyEnv, stack: str, image: str, case: str) -> float:
    """The fault mended by hand on a bare container of the same spec (then removed)."""
    name = f"kb-floor-{secrets.token_hex(3)}"
    await _node_run(
        env, stack, _floor_run(image, name) + " >/dev/null && "
        + _UNTIL_UP.format(tries=POLL_TRIES, port=FLOOR_PORT),
    )
    try:
        if case == "kill":
            _, took = await _timed(
                env, stack, f"sudo docker kill {name}", f"sudo docker start {name}", FLOOR_PORT
            )
        else:
            _, took = await _timed(
                env, stack, f"sudo docker rm -f {name}", _floor_run(image, name), FLOOR_PORT
            )
        return took
    finally:
        await _node_run(env, stack, f"sudo docker rm -f {name} >/dev/null")


# ---- kombify's side -----------------------------------------------------------------------


async def _incidents(env: KombifyEnv, stack: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await env.call("GET", f"/v1/stacks/{stack}/incidents")
    return found


async def _recovered(
    env: KombifyEnv, stack: str, before: set[int], service: str, kind: str, *, timeout: float
) -> dict[str, Any]:
    """The new incident of ``service`` and ``kind`` once it is recorded recovered (a heal
    pass may open a drift incident for the same service meanwhile: not this one)."""
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        seen = [i for i in await _incidents(env, stack) if i["id"] not in before]
        for incident in seen:
            if (incident["service"], incident["kind"]) != (service, kind):
                continue
            if incident["state"] == "recovered":
                return incident
            if incident["state"] == "given-up":
                raise RuntimeError(f"kombify gave up on {service}: {incident}")
        await asyncio.sleep(0.2)
    raise RuntimeError(f"no recovered incident of `{service or 'the node'}` in {stack}: {seen}")


async def _watching(client: Client, stack: str, since: float, timeout: float = 90) -> None:
    """Until the node's HealNode holds the agent's stream (WatchNode heartbeated after
    ``since``, epoch seconds): the next fault is then noticed by a watch already open."""
    handle = client.get_workflow_handle(heal_node_workflow_id(ORG, stack, NODE))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = await handle.describe()
        for pending in described.raw_description.pending_activities:
            if pending.activity_type.name != "WatchNode":
                continue
            if not pending.HasField("last_heartbeat_time"):
                continue
            beat = pending.last_heartbeat_time.ToDatetime(tzinfo=UTC).timestamp()
            if beat >= since:
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"HealNode of {stack} does not watch its node after {timeout:.0f} s")


async def _reset(env: KombifyEnv, client: Client, stack: str) -> None:
    """``kombify heal``: crash-loop memory forgotten; then until the watch is open again."""
    since = time.time()
    await env.call("POST", f"/v1/stacks/{stack}/heal")
    await _watching(client, stack, since)
    await asyncio.sleep(0.3)  # the watch that answered the pass hands over to the next one


async def _kombify_round(
    env: KombifyEnv, client: Client, stack: str, case: str
) -> tuple[float, float, dict[str, Any]]:
    """One fault left to kombify: seconds until web answers, when the fault's command
    returned (epoch seconds), and the incident."""
    before = {i["id"] for i in await _incidents(env, stack)}
    cid = await _web_container(env, stack)
    fault = f"sudo docker kill {cid}" if case == "kill" else f"sudo docker rm -f {cid}"
    fault_at, took = await _timed(env, stack, fault, "", WEB_PORT)
    kind = "exited" if case == "kill" else "missing"
    incident = await _recovered(env, stack, before, "web", kind, timeout=INCIDENT_TIMEOUT)
    await _reset(env, client, stack)
    return took, fault_at, incident


# ---- the node -----------------------------------------------------------------------------


class _Published:
    """The node's 127.0.0.1 port for ``web``, looked up again when it stops answering (a
    restarted node container may be given another host port)."""

    def __init__(self, stack: str) -> None:
        self.docker = docker_client()
        self.container = container_name(stack, NODE)
        self.http = httpx.AsyncClient(timeout=1)

    def _port(self) -> int | None:
        try:
            bound = self.docker.api.port(self.container, WEB_PORT)
        except DockerException:  # the engine's answer while the node (re)starts
            return None
        return int(bound[0]["HostPort"]) if bound else None

    async def answers(self) -> bool:
        port = await asyncio.to_thread(self._port)
        if port is None:
            return False
        try:
            response = await self.http.get(f"http://127.0.0.1:{port}/")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def until_answers(self, started: float) -> float:
        """Seconds from ``started`` (monotonic) until web answers; bounded."""
        while time.monotonic() - started < NODE_TIMEOUT:
            if await self.answers():
                return time.monotonic() - started
            await asyncio.sleep(0.05)
        raise RuntimeError(f"web on {self.container} does not answer after {NODE_TIMEOUT:.0f} s")

    async def close(self) -> None:
        await self.http.aclose()
        self.docker.close()


async def _engine(action: str, stack: str) -> None:
    client = docker_client()
    try:
        await asyncio.to_thread(getattr(SimEngine(client), action), stack)
    finally:
        client.close()


async def _node_round(
    env: KombifyEnv, client: Client, stack: str
) -> tuple[float, float, float, dict[str, Any]]:
    """The node stopped and left to kombify: seconds until web answers, when the stop
    returned (epoch seconds), how long the stop took, and the incident."""
    before = {i["id"] for i in await _incidents(env, stack)}
    web = _Published(stack)
    try:
        stopping = time.monotonic()
        await _engine("stop", stack)
        stopped, stop_at = time.monotonic(), time.time()
        took = await web.until_answers(stopped)
    finally:
        await web.close()
    incident = await _recovered(env, stack, before, "", "node-down", timeout=NODE_TIMEOUT)
    await _reset(env, client, stack)
    return took, stop_at, stopped - stopping, incident


async def _node_floor(stack: str) -> float:
    """A stack without healing: its node stopped, then started by hand."""
    web = _Published(stack)
    try:
        await _engine("stop", stack)
        started = time.monotonic()
        await _engine("start", stack)
        return await web.until_answers(started)
    finally:
        await web.close()


# ---- the run ------------------------------------------------------------------------------


async def _deploy(env: KombifyEnv, healing: str) -> str:
    from tests.support.kombinations import one_node

    stack = env.new_stack()
    run = await env.wait(await env.start(one_node(stack, notes=False, healing=healing)),
                         timeout=DEPLOY_TIMEOUT)
    if run["state"] != "succeeded":
        raise RuntimeError(f"deploy of {stack} ended {run['state']}: {run.get('summary')}")
    return stack


async def _service_cases(
    env: KombifyEnv, client: Client, stack: str, every: str, image: str, rounds: int
) -> list[Case]:
    cases = {"kill": Case("killed container", every), "remove": Case("removed container", every)}
    for index in range(rounds):
        for fault, case in cases.items():
            case.floor.append(await _floor_round(env, stack, image, fault))
            took, fault_at, incident = await _kombify_round(env, client, stack, fault)
            case.record(took, incident, fault_at)
            print(case.line(index), flush=True)
    return list(cases.values())


async def _node_case(
    env: KombifyEnv, client: Client, stack: str, every: str, rounds: int
) -> Case:
    case = Case("stopped node", every, goal=False)
    floor_stack = await _deploy(env, "{enabled: false}")
    print(f"stack {floor_stack} (healing off) deployed for the stopped node's floor", flush=True)
    for index in range(rounds):
        case.floor.append(await _node_floor(floor_stack))
        took, stop_at, stopping, incident = await _node_round(env, client, stack)
        case.record(took, incident, stop_at)
        case.stopping.append(stopping)
        print(case.line(index), flush=True)
    return case


async def _measure(
    home: Path, address: str, image: str, rounds: int, node_rounds: int
) -> list[Case]:
    from temporalio.client import Client

    from tests.support.deploy_env import KombifyEnv

    env = KombifyEnv(home, address)
    cases: list[Case] = []
    try:
        env.start_worker()
        client = await Client.connect(address)
        await wait_for_worker(client, env.settings.task_queue)
        for every in ("5m", "10s"):
            stack = await _deploy(env, f"{{every: {every}}}")
            await _watching(client, stack, since=0)
            print(f"stack {stack} (healing every {every}) deployed; its HealNode watches",
                  flush=True)
            cases += await _service_cases(env, client, stack, every, image, rounds)
            if every == "10s" and node_rounds:
                cases.append(await _node_case(env, client, stack, every, node_rounds))
            # One node at a time: the next stack's figures without this one's healing.
            gone = await env.destroy(stack)
            if gone["state"] != "succeeded":
                raise RuntimeError(f"destroy of {stack} ended {gone['state']}")
            await asyncio.to_thread(delete_simulation, stack)
            env.stacks.remove(stack)
    finally:
        await env.close()  # the worker, and every simulation made here
    return cases


# ---- output -------------------------------------------------------------------------------


def _summary(cases: list[Case]) -> bool:
    """The table; whether every goal was met."""
    print(f"\nsummary (seconds; {os.cpu_count()} CPUs; kombify and floor medians over rounds)")
    head = (
        f"  {'case':<18}{'every':>6}{'rounds':>7}{'median':>8}{'min':>7}{'max':>7}"
        f"{'floor':>8}{'ratio':>7}{'goal':>7}  met  opened  incident ttr (medians)"
    )
    print(head)
    all_met = True
    for c in cases:
        k, floor = statistics.median(c.kombify), statistics.median(c.floor)
        goal = 2 * floor + 1
        met = k <= goal
        all_met = all_met and (met or not c.goal)
        ttrs = [t for t in c.incident if t is not None]
        ttr = f"{statistics.median(ttrs):.3f}" if ttrs else "-"
        print(
            f"  {c.case:<18}{c.every:>6}{len(c.kombify):>7}{k:8.3f}{min(c.kombify):7.3f}"
            f"{max(c.kombify):7.3f}{floor:8.3f}{k / floor:7.2f}"
            + (f"{goal:7.3f}  {'yes' if met else 'NO '}" if c.goal else f"{'-':>7}  -  ")
            + f"{statistics.median(c.detected):+7.3f}  {ttr}"
        )
    print("  opened: from the fault's return until kombify opened the incident; incident ttr: "
          "its time_to_recovery_s (opened -> recovered, health check passed)")
    print("  goal: kombify's median within 2x the floor's median + 1 s (containers only): "
          + ("met" if all_met else "MISSED"))
    return all_met


def main() -> None:
    """Set up, measure, print, clean up."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per container fault")
    parser.add_argument("--node-rounds", type=int, default=3, help="stopped-node rounds (0-5)")
    parser.add_argument("--keep-home", action="store_true", help="keep the temp KOMBIFY_HOME")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 10:
        parser.error("--rounds must be between 1 and 10")
    if not 0 <= args.node_rounds <= 5:
        parser.error("--node-rounds must be between 0 and 5")

    started = time.monotonic()
    with bench_home("kombify-bench-heal-", keep=args.keep_home) as home:
        node_image, image = images()
        print(f"node image {node_image}, service image {image}, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}, home {home}", flush=True)
        tests_support()
        from tests.support.temporal import running_temporal

        with running_temporal(home / "temporal") as address:
            cases = asyncio.run(_measure(home, address, image, args.rounds, args.node_rounds))
        _summary(cases)
    print(f"whole run: {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
