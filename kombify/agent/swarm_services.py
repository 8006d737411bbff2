"""Converging, listing and removing one stack's Swarm services through a manager's engine.

Swarm does the rollout itself (spread placement, rolling updates, rollback of an update whose
new tasks fail their health check); the agent sends the specs and watches until each service
has converged, was rolled back by the swarm, or the wait is over. Every function blocks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kombify.agent import manifest as mf
from kombify.agent import swarm_spec as ss
from kombify.agent.engine import Engine
from kombify.agent.proto import pb
from kombify.agent.swarm import SwarmError, _call

DEFAULT_TIMEOUT_MS = 300_000
# A look is two reads on the manager (the service, its tasks); half a second between them
# left a converged rollout waiting 0.25 s on average before anyone heard of it.
_POLL_S = 0.2
# Update states in which the swarm has given up on the new revision.
_ROLLING_BACK = ("rollback_started", "rollback_paused", "rollback_completed")
_PAUSED = ("paused", "rollback_paused")

Emit = Callable[[pb.ApplyEvent], None]


@dataclass
class _Pending:
    """A service created or updated by this apply, until it settles."""

    name: str
    service_id: str
    digest: str
    task_digest: str
    created: bool
    update_before: str  # the UpdateStatus (StartedAt) before this apply's update


def _stack_services(engine: Engine, stack: str) -> dict[str, dict[str, Any]]:
    found = _call(
        "listing swarm services",
        engine.client.api.services,
        filters={"label": f"{ss.L_STACK}={stack}"},
    )
    return {s["Spec"]["Labels"].get(ss.L_SERVICE, ""): s for s in found}


def ensure_network(engine: Engine, name: str, stack: str) -> bool:
    """Creates the attachable overlay network when missing; whether it was created."""
    api = engine.client.api
    existing = _call("listing networks", api.networks, names=[name])
    if any(n.get("Name") == name for n in existing):
        return False
    _call(
        f"creating overlay network `{name}`",
        api.create_network,
        name,
        driver="overlay",
        attachable=True,
        labels={ss.L_STACK: stack},
    )
    return True


def _update_marker(service: dict[str, Any]) -> str:
    status = service.get("UpdateStatus") or {}
    return f"{status.get('StartedAt', '')}|{status.get('State', '')}"


def _tasks(engine: Engine, service_id: str) -> list[dict[str, Any]]:
    return list(
        _call("listing swarm tasks", engine.client.api.tasks, filters={"service": service_id})
    )


def _wanted(service: dict[str, Any], tasks: list[dict[str, Any]]) -> int:
    replicated = (service["Spec"].get("Mode") or {}).get("Replicated")
    if replicated is not None:
        return int(replicated.get("Replicas", 1))
    return sum(1 for t in tasks if t.get("DesiredState") == "running")


def _running(tasks: list[dict[str, Any]], digest: str | None = None) -> int:
    """Tasks that run (Swarm reports a task with a health check running once it is healthy)."""
    return sum(
        1
        for t in tasks
        if t.get("DesiredState") == "running"
        and (t.get("Status") or {}).get("State") == "running"
        and (digest is None or _task_hash(t) == digest)
    )


def _task_hash(task: dict[str, Any]) -> str:
    container = ((task.get("Spec") or {}).get("ContainerSpec")) or {}
    return str((container.get("Labels") or {}).get(ss.L_HASH, ""))


def _task_errors(tasks: list[dict[str, Any]], limit: int = 2) -> str:
    """The latest task failures, newest first, for a person."""
    # Pending tasks carry scheduling notes too ("host-mode port already in use" while an old
    # task still holds it): passing, not failures.
    failed = [t for t in tasks if (t.get("Status") or {}).get("State") in ("failed", "rejected")]
    failed.sort(key=lambda t: str((t.get("Status") or {}).get("Timestamp", "")), reverse=True)
    lines = []
    for task in failed[:limit]:
        status = task.get("Status") or {}
        lines.append(
            f"{status.get('State', '?')}: {status.get('Err') or status.get('Message', '')}"
        )
    return "; ".join(lines)


def apply(engine: Engine, manifest: pb.SwarmManifest, emit: Emit) -> pb.ApplyResult:
    """Converges the stack's services to ``manifest`` and waits for them to settle.

    Raises:
        SwarmError: This node is not a manager, or the engine refused a spec.
    """
    revision = manifest.revision or "swarm"
    result = pb.ApplyResult(revision=revision, ok=True)
    if manifest.network and ensure_network(engine, manifest.network, manifest.stack):
        emit(
            pb.ApplyEvent(
                kind=pb.ApplyEvent.PLAN, message=f"overlay network {manifest.network} created"
            )
        )
    existing = _stack_services(engine, manifest.stack)
    api = engine.client.api
    pending: list[_Pending] = []
    outcomes: dict[str, pb.ServiceOutcome] = {}
    for service in manifest.services:
        name = service.spec.name
        body = ss.service_spec(service, manifest)
        digest = body["Labels"][ss.L_HASH]
        task_digest = body["TaskTemplate"]["ContainerSpec"]["Labels"][ss.L_HASH]
        current = existing.get(name)
        if current is not None and current["Spec"]["Labels"].get(ss.L_HASH) == digest:
            outcomes[name] = pb.ServiceOutcome(
                service=name, outcome=pb.OUTCOME_UNCHANGED, config_hash=digest
            )
            emit(pb.ApplyEvent(kind=pb.ApplyEvent.UNCHANGED, service=name, message="unchanged"))
            continue
        args = {
            "task_template": body["TaskTemplate"],
            "name": body["Name"],
            "labels": body["Labels"],
            "mode": body["Mode"],
            "update_config": body["UpdateConfig"],
            "rollback_config": body["RollbackConfig"],
            "endpoint_spec": body["EndpointSpec"],
        }
        if current is None:
            created = _call(f"creating swarm service `{name}`", api.create_service, **args)
            pending.append(_Pending(name, created["ID"], digest, task_digest, True, ""))
            emit(_event(pb.ApplyEvent.CREATING, name, f"creating {_shape(service)}"))
        else:
            version = int(current["Version"]["Index"])
            _call(
                f"updating swarm service `{name}`",
                api.update_service,
                current["ID"],
                version,
                **args,
            )
            marker = _update_marker(current)
            pending.append(_Pending(name, current["ID"], digest, task_digest, False, marker))
            emit(_event(pb.ApplyEvent.CREATING, name, f"rolling update to {_shape(service)}"))
    wanted_names = {s.spec.name for s in manifest.services}
    for name, current in sorted(existing.items()):
        if name in wanted_names:
            continue
        _call(f"removing swarm service `{name}`", api.remove_service, current["ID"])
        outcomes[name] = pb.ServiceOutcome(service=name, outcome=pb.OUTCOME_REMOVED)
        emit(_event(pb.ApplyEvent.REMOVED, name, "removed"))
    timeout = (manifest.timeout_ms or DEFAULT_TIMEOUT_MS) / 1000
    for item in pending:
        emit(_event(pb.ApplyEvent.HEALTH_CHECKING, item.name, "waiting for its tasks"))
    for item, outcome in zip(pending, _settle(engine, pending, timeout, emit), strict=True):
        outcomes[item.name] = outcome
    for service in manifest.services:
        result.services.append(outcomes[service.spec.name])
    result.services.extend(o for n, o in sorted(outcomes.items()) if n not in wanted_names)
    result.ok = all(
        o.outcome not in (pb.OUTCOME_FAILED, pb.OUTCOME_ROLLED_BACK) for o in result.services
    )
    return result


def _shape(service: pb.SwarmServiceSpec) -> str:
    if service.mode == "global":
        return "global (a task on every eligible node)"
    return f"{mf.replicas(service.spec)} replica(s)"


def _event(kind: int, service: str, message: str) -> pb.ApplyEvent:
    return pb.ApplyEvent(kind=kind, service=service, message=message)  # type: ignore[arg-type]


def _settle(
    engine: Engine, pending: list[_Pending], timeout: float, emit: Emit
) -> list[pb.ServiceOutcome]:
    """Polls each pending service until it converged, was rolled back, or time is up."""
    deadline = time.monotonic() + timeout
    done: dict[str, pb.ServiceOutcome] = {}
    progress: dict[str, str] = {}
    while len(done) < len(pending):
        for item in pending:
            if item.name in done:
                continue
            outcome, note = _check(engine, item)
            if note and progress.get(item.name) != note:
                progress[item.name] = note
                emit(_event(pb.ApplyEvent.HEALTH_CHECKING, item.name, note))
            if outcome is not None:
                done[item.name] = outcome
                kind = {
                    pb.OUTCOME_ROLLED_BACK: pb.ApplyEvent.ROLLED_BACK,
                    pb.OUTCOME_FAILED: pb.ApplyEvent.FAILED,
                }.get(outcome.outcome, pb.ApplyEvent.HEALTHY)
                emit(_event(kind, item.name, outcome.reason or "converged"))
        if len(done) == len(pending):
            break
        if time.monotonic() > deadline:
            for item in pending:
                if item.name not in done:
                    tasks = _tasks(engine, item.service_id)
                    why = _task_errors(tasks) or progress.get(item.name, "no task runs")
                    done[item.name] = pb.ServiceOutcome(
                        service=item.name,
                        outcome=pb.OUTCOME_FAILED,
                        config_hash=item.digest,
                        reason=f"not converged within {timeout:.0f}s: {why}",
                    )
                    emit(_event(pb.ApplyEvent.FAILED, item.name, done[item.name].reason))
            break
        time.sleep(_POLL_S)
    return [done[item.name] for item in pending]


def _check(engine: Engine, item: _Pending) -> tuple[pb.ServiceOutcome | None, str]:
    """One look at a pending service: its outcome once settled, and a progress note."""
    service = _call(
        f"inspecting swarm service `{item.name}`",
        engine.client.api.inspect_service,
        item.service_id,
    )
    tasks = _tasks(engine, item.service_id)
    wanted = _wanted(service, tasks)
    status = service.get("UpdateStatus") or {}
    state = status.get("State", "")
    fresh = not item.created and _update_marker(service) != item.update_before
    if fresh and state in _ROLLING_BACK:
        why = status.get("Message", "") or "the update failed"
        errors = _task_errors(tasks)
        reason = f"{why}" + (f" ({errors})" if errors else "")
        if state == "rollback_completed" and _running(tasks) >= wanted:
            return (
                pb.ServiceOutcome(
                    service=item.name,
                    outcome=pb.OUTCOME_ROLLED_BACK,
                    reason=f"rolled back by the swarm, previous revision serves again: {reason}",
                ),
                "",
            )
        if state == "rollback_paused":
            return (
                pb.ServiceOutcome(
                    service=item.name,
                    outcome=pb.OUTCOME_FAILED,
                    reason=f"the swarm's rollback stopped: {status.get('Message', '')}",
                ),
                "",
            )
        return None, f"the swarm rolls it back: {reason}"
    if fresh and state == "paused":
        return (
            pb.ServiceOutcome(
                service=item.name,
                outcome=pb.OUTCOME_FAILED,
                reason=f"the swarm paused the update: {status.get('Message', '')}",
            ),
            "",
        )
    running = _running(tasks, item.task_digest)
    settled = item.created or not fresh or state == "completed"
    if running >= wanted and wanted > 0 and settled:
        outcome = pb.OUTCOME_CREATED if item.created else pb.OUTCOME_UPDATED
        ids = [
            str(((t.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID", ""))
            for t in tasks
            if t.get("DesiredState") == "running"
        ]
        return (
            pb.ServiceOutcome(
                service=item.name, outcome=outcome, config_hash=item.digest, container_ids=ids
            ),
            "",
        )
    if item.created and running == 0 and (missing := _image_missing(tasks, wanted)):
        return (
            pb.ServiceOutcome(
                service=item.name,
                outcome=pb.OUTCOME_FAILED,
                config_hash=item.digest,
                reason=missing,
            ),
            "",
        )
    errors = _task_errors(tasks, limit=1)
    return None, f"{running}/{wanted} running" + (f"; last failure {errors}" if errors else "")


def _image_missing(tasks: list[dict[str, Any]], wanted: int) -> str:
    """Why a new service cannot start when no node has its image; "" otherwise.

    The swarm retries a task whose image is missing for ever; when the control host had none
    to ship and the nodes cannot pull it, no retry will find it, so the apply says so once
    every wanted task failed that way twice, not at its timeout minutes later.
    """
    failed = [t for t in tasks if (t.get("Status") or {}).get("State") in ("failed", "rejected")]
    errors = [str((t.get("Status") or {}).get("Err", "")) for t in failed]
    if len(errors) < 2 * max(wanted, 1) or not all("No such image" in e for e in errors):
        return ""
    image = errors[0].split("No such image:", 1)[-1].strip()
    return (
        f"image {image} is not on the nodes that may run it and could not be pulled (no "
        "registry reachable, or no such image): load it into the Docker engine of the host "
        "kombify runs on, which ships it to the nodes, or fix the name"
    )


def _port(port: dict[str, Any]) -> pb.PortMapping:
    return pb.PortMapping(
        container_port=int(port.get("TargetPort", 0)),
        host_port=int(port.get("PublishedPort", 0)),
        protocol=port.get("Protocol", "tcp"),
    )


def list_services(engine: Engine, stack: str) -> list[pb.SwarmServiceStatus]:
    """The stack's services as they run, with their tasks and the nodes those run on."""
    nodes = {
        n["ID"]: (n.get("Description") or {}).get("Hostname", "")
        for n in _call("listing the swarm's nodes", engine.client.api.nodes)
    }
    found = []
    for name, service in sorted(_stack_services(engine, stack).items()):
        tasks = _tasks(engine, service["ID"])
        spec = service["Spec"]
        ports = (spec.get("EndpointSpec") or {}).get("Ports") or []
        status = service.get("UpdateStatus") or {}
        current = [t for t in tasks if t.get("DesiredState") == "running"]
        # The newest failures beside the tasks that should run: why a replica is missing.
        failed = sorted(
            (t for t in tasks if (t.get("Status") or {}).get("State") in ("failed", "rejected")),
            key=lambda t: str((t.get("Status") or {}).get("Timestamp", "")),
            reverse=True,
        )[:3]
        found.append(
            pb.SwarmServiceStatus(
                name=name,
                swarm_name=spec.get("Name", ""),
                service_id=service["ID"],
                mode="replicated" if "Replicated" in (spec.get("Mode") or {}) else "global",
                replicas_wanted=_wanted(service, tasks),
                replicas_running=_running(tasks),
                publish_mode=ports[0].get("PublishMode", "") if ports else "",
                ports=[_port(p) for p in ports],
                tasks=[_task(t, nodes) for t in sorted(current, key=_slot) + failed],
                update_state=status.get("State", ""),
                update_message=status.get("Message", ""),
                image=spec["TaskTemplate"]["ContainerSpec"].get("Image", ""),
            )
        )
    return found


def _slot(task: dict[str, Any]) -> tuple[int, str]:
    return int(task.get("Slot") or 0), str(task.get("NodeID", ""))


def _task(task: dict[str, Any], nodes: dict[str, str]) -> pb.SwarmTask:
    status = task.get("Status") or {}
    return pb.SwarmTask(
        id=task.get("ID", ""),
        slot=int(task.get("Slot") or 0),
        node_id=task.get("NodeID", ""),
        node=nodes.get(task.get("NodeID", ""), ""),
        state=status.get("State", ""),
        desired_state=task.get("DesiredState", ""),
        error=status.get("Err", ""),
        container_id=(status.get("ContainerStatus") or {}).get("ContainerID", ""),
        since=status.get("Timestamp", ""),
    )


def remove_services(engine: Engine, stack: str, *, network: str = "") -> list[str]:
    """Removes every service of ``stack`` (and ``network`` when given, once unused)."""
    api = engine.client.api
    removed = []
    for name, service in sorted(_stack_services(engine, stack).items()):
        _call(f"removing swarm service `{name}`", api.remove_service, service["ID"])
        removed.append(name)
    if network:
        _remove_network(engine, network, stack)
    return removed


def _remove_network(engine: Engine, network: str, stack: str) -> None:
    """Removes the overlay network; its endpoints go with the tasks, which takes a moment."""
    api = engine.client.api
    deadline = time.monotonic() + 30
    while True:
        existing = [
            n
            for n in _call("listing networks", api.networks, names=[network])
            if n.get("Name") == network
        ]
        if not existing or (existing[0].get("Labels") or {}).get(ss.L_STACK) != stack:
            return  # gone, or made by another stack sharing the swarm: its own to remove
        try:
            _call(f"removing network `{network}`", api.remove_network, existing[0]["Id"])
            return
        except SwarmError:
            if time.monotonic() > deadline:
                raise
            time.sleep(_POLL_S)
