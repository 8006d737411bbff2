"""Self-healing on KombiSim, end to end: faults made behind kombify's back are mended.

Every fault here is made on the node itself, as a crash or a person would: ``docker kill``,
``docker rm -f``, a health check that starts failing, a stopped node, a container started by
hand. kombify must notice on its own (HealNode holds each agent's report stream), act, record
an incident with detection and recovery times, and tell the owner's webhook.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from kombify.contracts.heal import heal_schedule_id
from kombify.tofu import find_tofu_binary
from tests.support.deploy_env import KombifyEnv, published, sim_action
from tests.support.kombinations import kit_defaults_off, one_node
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ORG = "local"  # the organisation of a single-tenant installation
# Passes two probes, then fails for good: each fresh container is healthy for ~2 s only.
FLAPPING_CHECK = (
    "test ! -f /tmp/one && echo > /tmp/one || { test -f /tmp/two && exit 1; echo > /tmp/two; }"
)


# busybox httpd as PID 1 ignores SIGTERM, so each stop would wait out Docker's 10 s grace; the
# check tests restart and recreate often, so their service stops at once.
QUICK_STOP = (
    "image: kombify-test/httpd:1\n"
    '      command: ["/bin/busybox", "sh", "-c", '
    "\"trap 'exit 0' TERM; /bin/busybox httpd -f -p 80 -h /www & wait\"]"
)


def _checked(name: str, check: str) -> str:
    """A one-node stack whose web has ``check`` as its health check and stops quickly."""
    return (
        one_node(name, notes=False)
        .replace('healthcheck: {http: "http://localhost:80/", interval: 1s}', check)
        .replace("image: kombify-test/httpd:1", QUICK_STOP)
    )


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.close()


@pytest.fixture(scope="module")
async def healing(kombify: KombifyEnv, receiver: Receiver) -> AsyncIterator[KombifyEnv]:
    """The module's kombify, its worker told to notify the receiver."""
    kombify.stop_worker()
    kombify.env["KOMBIFY_NOTIFY_URLS"] = receiver.url
    kombify.start_worker()
    yield kombify


async def _until(
    what: str, check: Callable[[], Any], *, timeout: float = 90, every: float = 0.5
) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")


async def _incidents(kombify: KombifyEnv, stack: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await kombify.call("GET", f"/v1/stacks/{stack}/incidents")
    return found


async def _answers(stack: str, port: int) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            response = await http.get(f"http://127.0.0.1:{published(stack, 'box', port)}/")
    except (httpx.HTTPError, StopIteration, KeyError):
        return False
    return response.status_code == 200


async def _recovered(kombify: KombifyEnv, stack: str, service: str, kind: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        for incident in await _incidents(kombify, stack):
            if (incident["service"], incident["kind"], incident["state"]) == (
                service,
                kind,
                "recovered",
            ):
                return incident
        return None

    found: dict[str, Any] = await _until(f"{service} {kind} recovered", check)
    return found


async def _state(kombify: KombifyEnv, stack: str, container: str) -> str:
    out = await kombify.on_node(
        stack, "box", f"sudo docker inspect -f '{{{{.State.Status}}}}' {container}"
    )
    return out.strip()


@pytest.fixture(scope="module")
async def stack(healing: KombifyEnv) -> str:
    name = healing.new_stack()
    run = await healing.deploy(one_node(name))
    assert run["state"] == "succeeded", run.get("summary")
    return name


async def test_docker_leaves_a_killed_container_down_and_kombify_brings_it_back(
    healing: KombifyEnv, stack: str, receiver: Receiver
) -> None:
    # Docker's own restart policy: a killed unless-stopped container stays down.
    await healing.on_node(
        stack,
        "box",
        "sudo docker run -d --name bare --restart unless-stopped kombify-test/httpd:1 "
        "&& sudo docker kill bare",
    )
    await asyncio.sleep(3)
    assert await _state(healing, stack, "bare") == "exited"
    await healing.on_node(stack, "box", "sudo docker rm -f bare")

    (web_id,) = (await healing.containers(stack, "box"))["web"]
    await healing.on_node(stack, "box", f"sudo docker kill {web_id}")

    incident = await _recovered(healing, stack, "web", "exited")
    assert await _answers(stack, 8080)
    assert await _state(healing, stack, web_id) == "running"  # started again, not replaced
    assert incident["node"] == "box" and incident["detected_at"] and incident["recovered_at"]
    assert "agent watch" in incident["detection"]
    assert "started" in incident["action"] and incident["time_to_recovery_s"] < 30

    # The owner heard of it twice: when it opened and when it recovered.
    def about_web() -> list[str]:
        return [
            json.dumps(m)
            for m in receiver.received
            if stack in json.dumps(m) and "web" in json.dumps(m)
        ]

    events = await _until(
        "an opened and a recovered notification", lambda: len(about_web()) >= 2 and about_web()
    )
    assert any("exited" in e for e in events) and any("recovered" in e for e in events), events


async def test_a_removed_container_is_created_again(healing: KombifyEnv, stack: str) -> None:
    (notes_id,) = (await healing.containers(stack, "box"))["notes"]
    await healing.on_node(stack, "box", f"sudo docker rm -f {notes_id}")

    incident = await _recovered(healing, stack, "notes", "missing")

    (new_id,) = (await healing.containers(stack, "box"))["notes"]
    assert new_id != notes_id and "created" in incident["action"]
    assert await _answers(stack, 8081)


async def test_incidents_carry_what_the_owner_needs(healing: KombifyEnv, stack: str) -> None:
    listed = await _incidents(healing, stack)
    assert {i["kind"] for i in listed} >= {"exited", "missing"}
    for incident in listed:
        assert {"id", "node", "service", "kind", "detected_at", "action", "recovered_at"} <= set(
            incident
        )
        assert incident["state"] in ("open", "recovered", "given-up")


async def test_an_unhealthy_container_is_restarted_then_recreated(healing: KombifyEnv) -> None:
    name = healing.new_stack()
    source = _checked(name, 'healthcheck: {cmd: "test ! -f /tmp/broken", interval: 1s, retries: 2}')
    run = await healing.deploy(source)
    assert run["state"] == "succeeded", run.get("summary")
    (web_id,) = (await healing.containers(name, "box"))["web"]

    await healing.on_node(name, "box", f"sudo docker exec {web_id} sh -c 'echo > /tmp/broken'")

    incident = await _recovered(healing, name, "web", "unhealthy")
    # /tmp/broken survives a restart, so the restart alone cannot mend it: recreated.
    assert "restarted" in " ".join(incident["actions"]) and "recreated" in incident["action"]
    (new_id,) = (await healing.containers(name, "box"))["web"]
    assert new_id != web_id


async def test_a_crash_loop_backs_off_and_is_given_up(healing: KombifyEnv) -> None:
    name = healing.new_stack()
    source = _checked(name, f'healthcheck: {{cmd: "{FLAPPING_CHECK}", interval: 1s, retries: 1}}')
    run = await healing.deploy(source)
    assert run["state"] == "succeeded", run.get("summary")

    async def given_up() -> dict[str, Any] | None:
        for incident in await _incidents(healing, name):
            if incident["state"] == "given-up":
                return incident
        return None

    incident = await _until("the crash loop given up", given_up, timeout=240)

    assert incident["kind"] == "crash-looping" and "last log lines" in incident["detail"]
    everything = await _incidents(healing, name)
    backoffs = [a for i in everything for a in i["actions"] if "backing off" in a]
    assert any("2 s" in a for a in backoffs) and any("16 s" in a for a in backoffs), backoffs
    # No tight loop: once given up, kombify leaves the service alone (same container, not
    # restarted), and each failure cost at most a restart and a recreate.
    (web_id,) = (await healing.containers(name, "box"))["web"]
    started = await _started_at(healing, name, web_id)
    await asyncio.sleep(12)
    assert (await healing.containers(name, "box"))["web"] == [web_id]
    assert await _started_at(healing, name, web_id) == started
    repairs = [a for i in everything for a in i["actions"] if a.endswith(": healthy")]
    assert len(repairs) == 5 and all(a.count("web-0") <= 2 for a in repairs), repairs


async def _started_at(kombify: KombifyEnv, stack: str, container: str) -> str:
    return await kombify.on_node(
        stack, "box", f"sudo docker inspect -f '{{{{.State.StartedAt}}}}' {container}"
    )


async def test_a_deploy_that_replaces_containers_opens_no_incident(
    healing: KombifyEnv, stack: str
) -> None:
    before = {i["id"] for i in await _incidents(healing, stack)}
    (old_id,) = (await healing.containers(stack, "box"))["web"]

    run = await healing.deploy(one_node(stack, greeting="bonjour"))

    assert run["state"] == "succeeded", run.get("summary")
    (new_id,) = (await healing.containers(stack, "box"))["web"]
    assert new_id != old_id  # replaced: stopped and removed under healing's eyes
    await asyncio.sleep(5)  # what a watch would report has arrived by now
    assert {i["id"] for i in await _incidents(healing, stack)} == before


async def test_heal_runs_are_filterable_by_run_kind(healing: KombifyEnv, stack: str) -> None:
    client = await Client.connect(healing.settings.temporal_address or "")
    query = f"KombifyRunKind = 'heal' AND KombifyStack = '{stack}' AND WorkflowType = 'HealNode'"
    found = [w.id async for w in client.list_workflows(query)]
    assert f"heal-node/{ORG}/{stack}/box" in found


async def test_a_stopped_node_is_started_again_and_its_services_run(
    healing: KombifyEnv, stack: str
) -> None:
    await sim_action("stop", stack)

    incident = await _recovered(healing, stack, "", "node-down")

    assert "started the simulated node" in " ".join(incident["actions"])
    assert await _until("web answers", lambda: _answers(stack, 8080), timeout=60)


async def _drift_by_hand(kombify: KombifyEnv, name: str) -> str:
    """A container kombify knows nothing of, and web's env changed the Docker way (a new
    container with the old one's labels and another -e; the old one removed); web's old id."""
    (web_id,) = (await kombify.containers(name, "box"))["web"]
    labels = await kombify.on_node(
        name,
        "box",
        f"sudo docker inspect -f '{{{{range $k, $v := .Config.Labels}}}}--label {{{{$k}}}}="
        f"{{{{$v}}}} {{{{end}}}}' {web_id}",
    )
    await kombify.on_node(
        name,
        "box",
        "sudo docker run -d --name by-hand kombify-test/httpd:1 && "
        f"sudo docker run -d --name web-by-hand {labels.strip()} -e GREETING=bye "
        f"kombify-test/httpd:1 && sudo docker rm -f {web_id}",
    )
    return web_id


async def test_drift_is_reported_and_left_with_restart(healing: KombifyEnv) -> None:
    name = healing.new_stack()
    run = await healing.deploy(one_node(name, notes=False))
    assert run["state"] == "succeeded", run.get("summary")
    await _drift_by_hand(healing, name)

    drift = await healing.call("GET", f"/v1/stacks/{name}/drift")

    kinds = {(d["kind"], d["service"]) for d in drift["items"]}
    assert ("unmanaged", "") in kinds and ("changed", "web") in kinds, drift
    changed = next(d for d in drift["items"] if d["kind"] == "changed")
    assert "GREETING" in changed["detail"]
    reported = await healing.call("POST", f"/v1/stacks/{name}/heal")
    assert {d["kind"] for d in reported["drift"]} == {"unmanaged", "changed"}, reported
    assert not any("recreated" in a for a in reported["actions"]), reported
    incidents = await _incidents(healing, name)
    web = next(i for i in incidents if i["service"] == "web" and i["kind"] == "drift")
    assert web["state"] == "open" and "`redeploy` repairs it" in web["action"]

    # OpenTofu drift: its state lost track of the node, so the plan is not empty any more.
    workdir = healing.home / "stacks" / ORG / name / "tofu"
    tofu = find_tofu_binary()
    listed = subprocess.run(
        [tofu, "state", "list"], cwd=workdir, capture_output=True, text=True, check=True
    ).stdout.split()
    subprocess.run([tofu, "state", "rm", listed[0]], cwd=workdir, capture_output=True, check=True)
    drift = await healing.call("GET", f"/v1/stacks/{name}/drift")
    (planned,) = [d for d in drift["items"] if d["kind"] == "tofu"]
    assert re.search(r"OpenTofu plans [1-9][0-9]* to add", planned["detail"]), planned


async def test_drift_is_repaired_with_redeploy(healing: KombifyEnv) -> None:
    name = healing.new_stack()
    run = await healing.deploy(one_node(name, notes=False, healing="{strategy: redeploy}"))
    assert run["state"] == "succeeded", run.get("summary")
    await _drift_by_hand(healing, name)

    await healing.call("POST", f"/v1/stacks/{name}/heal")

    # Repaired by this pass (or a scheduled one just before it): recreated from the spec.
    incidents = await _incidents(healing, name)
    web = next(i for i in incidents if i["service"] == "web" and i["kind"] == "drift")
    assert web["state"] == "recovered" and "recreated web-0" in " ".join(web["actions"]), web
    after = await healing.call("GET", f"/v1/stacks/{name}/drift")
    assert [d["kind"] for d in after["items"]] == ["unmanaged"], after  # never removed
    (new_id,) = (await healing.containers(name, "box"))["web"]
    env = await healing.on_node(
        name, "box", f"sudo docker inspect -f '{{{{.Config.Env}}}}' {new_id}"
    )
    assert "GREETING=hello" in env


async def _schedule(kombify: KombifyEnv, name: str) -> Any:
    client = await Client.connect(kombify.settings.temporal_address or "")
    return await client.get_schedule_handle(heal_schedule_id(ORG, name)).describe()


async def _schedule_is(kombify: KombifyEnv, name: str, every: int, paused: bool) -> Any:
    """The schedule once it says ``every`` and ``paused`` (the deploy's last step sets it up
    right after the run is recorded, so it may trail the recorded outcome by a moment)."""

    async def check() -> Any:
        try:
            described = await _schedule(kombify, name)
        except RPCError:  # not made yet
            return None
        interval = described.schedule.spec.intervals[0].every.total_seconds()
        return described if (interval, described.schedule.state.paused) == (every, paused) else None

    return await _until(f"schedule every {every}s, paused={paused}", check, timeout=30)


async def test_the_schedule_follows_the_spec_and_destroy_removes_it(
    healing: KombifyEnv,
) -> None:
    name = healing.new_stack()
    run = await healing.deploy(one_node(name, notes=False, healing="{every: 10s}"))
    assert run["state"] == "succeeded", run.get("summary")
    first = await _schedule_is(healing, name, 10, paused=False)
    assert first.schedule.action.workflow == "HealStack"

    off = await healing.deploy(one_node(name, notes=False, healing="{enabled: false, every: 2m}"))
    assert off["state"] == "succeeded", off.get("summary")
    await _schedule_is(healing, name, 120, paused=True)
    # Asked by hand, a pass does not act against the spec either: it says why it did nothing.
    skipped = await healing.call("POST", f"/v1/stacks/{name}/heal")
    assert "disabled" in skipped["skipped"] and skipped["actions"] == []

    gone = await healing.destroy(name)
    assert gone["state"] == "succeeded", gone.get("summary")
    with pytest.raises(RPCError):
        await _schedule(healing, name)


async def test_a_worker_killed_mid_heal_finishes_it_without_a_duplicate(
    healing: KombifyEnv, stack: str
) -> None:
    before = [i["id"] for i in await _incidents(healing, stack)]
    (web_id,) = (await healing.containers(stack, "box"))["web"]
    await healing.on_node(stack, "box", f"sudo docker kill {web_id}")

    async def opened() -> bool:
        return any(
            i["id"] not in before and i["service"] == "web"
            for i in await _incidents(healing, stack)
        )

    await _until("the incident opened", opened, timeout=60, every=0.1)
    healing.kill_worker()
    await asyncio.sleep(2)
    healing.start_worker()

    async def recovered() -> dict[str, Any] | None:
        for i in await _incidents(healing, stack):
            if i["id"] not in before and i["service"] == "web" and i["state"] == "recovered":
                return i
        return None

    await _until("healed after the worker restart", recovered, timeout=120)
    assert len((await healing.containers(stack, "box"))["web"]) == 1
    assert await _answers(stack, 8080)
    new = [i for i in await _incidents(healing, stack) if i["id"] not in before]
    assert len([i for i in new if i["service"] == "web"]) == 1, new


TWO_NODES = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {{name: {name}}}
spec:
  stackkit: modern-homelab
  nodes:
    - {{name: main, provider: sim, role: main}}
    - {{name: worker, provider: sim, role: worker}}
  healing: {{strategy: reschedule, every: 10s}}
  services:
{disabled}
    notes:
      image: kombify-test/httpd:1
      node: worker
      ports: [{{container: 80, host: 8081}}]
      healthcheck: {{http: "http://localhost:80/", interval: 1s}}
"""


async def test_reschedule_moves_the_services_of_a_node_that_stays_down_and_back(
    healing: KombifyEnv,
) -> None:
    name = healing.new_stack()
    run = await healing.deploy(TWO_NODES.format(name=name, disabled=kit_defaults_off(TWO_NODES)))
    assert run["state"] == "succeeded", run.get("summary")
    assert "notes" not in await healing.containers(name, "main", running=True)
    container = f"kombisim-{name}-worker"
    # A hung node: its container frozen, so it neither answers nor can be started again.
    subprocess.run(["docker", "pause", container], check=True, capture_output=True)
    try:

        async def moved() -> bool:
            return "notes" in await healing.containers(name, "main", running=True)

        await _until("notes running on main", moved, timeout=120, every=1)
        (down,) = [i for i in await _incidents(healing, name) if i["kind"] == "node-down"]
        assert "moved notes -> main" in " ".join(down["actions"]), down
    finally:
        subprocess.run(["docker", "unpause", container], check=True, capture_output=True)

    back = await _recovered(healing, name, "", "node-down")

    assert "moved back notes -> worker" in " ".join(back["actions"]), back
    assert "notes" not in await healing.containers(name, "main", running=True)
    assert "notes" in await healing.containers(name, "worker", running=True)
