"""A stack's nodes and their pinned SSH host keys: list them, check one, re-trust one.

Re-trusting takes the fingerprint the user checked: the key is read from the node again and
recorded only when it still has that fingerprint, so what is pinned is what was shown.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query
from sqlmodel import Session, col, select

from kombify.activities.deploy import DeployActivities
from kombify.activities.hostkeys import read_host_key
from kombify.api.deps import SessionDep, SettingsDep
from kombify.api.principal import OrgDep
from kombify.contracts.deploy import NodeTarget
from kombify.db import hostkeys as pins
from kombify.db import stacks as store
from kombify.db.models import (
    Deployment,
    HostKeyCheck,
    HostKeyPublic,
    HostKeysPublic,
    HostKeyTrust,
    Organisation,
    Stack,
)
from kombify.errors import ConflictError, NotFoundError
from kombify.hostkeys import HostKey
from kombify.names import NodeName, StackName
from kombify.settings import Settings
from kombify.specs import load_kombination
from kombify.specs.models import Kombination

router = APIRouter(prefix="/v1/stacks/{name}/nodes", tags=["nodes"])

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such stack or node", **_PROBLEM},
    409: {"description": "The node presents another key than the one confirmed", **_PROBLEM},
    502: {"description": "The node's key cannot be read", **_PROBLEM},
}
SimulateQuery = Query(
    default=None,
    description="The node's simulated stand-in (default: as the stack's last deploy ran).",
)


def _load(session: Session, org: Organisation, name: str) -> tuple[Stack, Kombination]:
    stack = store.get_stack(session, organisation_id=org.id, name=name)
    revision = store.current_revision(session, stack=stack)
    return stack, load_kombination(revision.source, filename=f"{name}.yaml")


def _last_simulated(session: Session, stack: Stack) -> bool:
    last = session.exec(
        select(Deployment)
        .where(Deployment.stack_id == stack.id, Deployment.kind == "deploy")
        .order_by(col(Deployment.started_at).desc())
    ).first()
    return bool(last and last.summary.get("options", {}).get("simulate", False))


@router.get("", responses=_ERRORS)
def list_nodes(name: StackName, session: SessionDep, org: OrgDep) -> HostKeysPublic:
    """The stack's nodes with their pinned host keys (a node never contacted has none)."""
    stack, k = _load(session, org, name)
    rows = [
        HostKeyPublic(
            node=p.node,
            simulated=p.simulated,
            address=p.address,
            algorithm=p.algorithm,
            fingerprint=p.fingerprint,
            source=p.source,
            recorded_at=p.recorded_at,
        )
        for p in pins.list_pins(session, stack_id=stack.id)
    ]
    seen = {row.node for row in rows}
    for node in k.spec.nodes:
        if node.name not in seen:
            rows.append(
                HostKeyPublic(
                    node=node.name,
                    simulated=node.provider == "sim",
                    address=node.address or "",
                    algorithm=None,
                    fingerprint=None,
                    source=None,
                    recorded_at=None,
                )
            )
    order = {node.name: i for i, node in enumerate(k.spec.nodes)}
    rows.sort(key=lambda r: (order.get(r.node, len(order)), r.node, r.simulated))
    return HostKeysPublic(stack=name, data=rows)


def _target(
    settings: Settings,
    session: Session,
    org: Organisation,
    name: str,
    node: str,
    simulate: bool | None,
) -> tuple[Stack, NodeTarget, HostKey | None, str]:
    """The node as it is reached now, the key its kombination states (if any) and the
    container of a simulated node."""
    stack, k = _load(session, org, name)
    spec_node = next((n for n in k.spec.nodes if n.name == node), None)
    if spec_node is None:
        raise NotFoundError(f"stack `{name}` has no node `{node}`")
    if simulate is None:
        simulate = _last_simulated(session, stack)
    targets, instances = DeployActivities(settings).resolve_targets(k, simulate)
    target = next((t for t in targets if t.name == node), None)
    if target is None:
        raise NotFoundError(
            f"node `{node}` of `{name}` is not running (its simulation is gone): "
            "`kombify apply` creates it and pins its key"
        )
    stated = spec_node.ssh.host_key if not target.simulated else None
    key = HostKey.parse(stated) if stated else None
    return stack, target, key, instances.get(node, "")


async def _check(
    settings: Settings,
    session: Session,
    org: Organisation,
    name: str,
    node: str,
    simulate: bool | None,
) -> tuple[Stack, NodeTarget, HostKey, HostKeyCheck, str]:
    stack, target, stated, instance = await asyncio.to_thread(
        _target, settings, session, org, name, node, simulate
    )
    pin = pins.get_pin(session, stack_id=stack.id, node=node, simulated=target.simulated)
    pinned = pins.pinned_key(pin) if pin else None
    if stated is not None:
        raise ConflictError(
            f"node `{node}`'s host key is stated in the kombination (ssh.hostKey "
            f"{stated.fingerprint}): to trust another, change spec.nodes[{node}].ssh.hostKey"
        )
    presented = await read_host_key(
        target.host, target.port, prefer=pinned.algorithm if pinned else None
    )
    check = HostKeyCheck(
        node=node,
        simulated=target.simulated,
        address=f"{target.host}:{target.port}",
        pinned=pinned.fingerprint if pinned else None,
        presented=presented.fingerprint,
        algorithm=presented.algorithm,
    )
    return stack, target, presented, check, instance


@router.get("/{node}/host-key", responses=_ERRORS)
async def check_host_key(
    name: StackName,
    node: NodeName,
    session: SessionDep,
    settings: SettingsDep,
    org: OrgDep,
    simulate: bool | None = SimulateQuery,
) -> HostKeyCheck:
    """Read the key the node presents now, beside the pinned one; records nothing."""
    *_, check, _ = await _check(settings, session, org, name, node, simulate)
    return check


@router.post("/{node}/trust", responses=_ERRORS)
async def trust_host_key(
    name: StackName,
    node: NodeName,
    body: HostKeyTrust,
    session: SessionDep,
    settings: SettingsDep,
    org: OrgDep,
    simulate: bool | None = SimulateQuery,
) -> HostKeyCheck:
    """Pin the key the node presents now, if it has the fingerprint the user checked."""
    found = await _check(settings, session, org, name, node, simulate)
    stack, target, presented, check, instance = found
    if presented.fingerprint != body.fingerprint.strip():
        raise ConflictError(
            f"node `{node}` presents {presented.fingerprint}, not {body.fingerprint.strip()}: "
            "nothing was recorded; check the key on the node again"
        )
    pins.save_pin(
        session,
        stack_id=stack.id,
        node=node,
        simulated=target.simulated,
        key=presented,
        source="trusted",
        address=check.address,
        instance=instance,
    )
    return check.model_copy(update={"recorded": True})
