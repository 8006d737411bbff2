"""The node's Docker Swarm membership, through the node's own engine (docker SDK).

Every function blocks; the agent calls them through ``asyncio.to_thread``. Docker errors
become :class:`SwarmError` (with the engine's one-line reason) or
:class:`~kombify.errors.DockerError` when the engine does not answer at all.
Join tokens pass through :func:`join_tokens` and :func:`join` only: nothing here logs them.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Mapping
from typing import Any

from kombify.agent.engine import Engine, short_reason
from kombify.agent.proto import pb
from kombify.errors import DockerError

# Where the kernel lists IPVS services once the module is loaded (Docker loads it for the
# ingress routing mesh when it can). Without it the mesh's virtual IPs never answer.
IPVS_PROC = "/proc/net/ip_vs"
IPVS_SYS = "/sys/module/ip_vs"
SWARM_PORT = 2377
_ROUTE_TABLE = "/proc/net/route"
# Labels kombify sets on swarm nodes; others' labels are left alone.
KOMBIFY_NODE_LABELS = "io.kombify."
# Docker's label on every container of a Swarm task.
SWARM_TASK_LABEL = "com.docker.swarm.task.id"


class SwarmError(Exception):
    """The engine refused a swarm operation; ``status`` is the gRPC status word to answer."""

    def __init__(self, message: str, status: str = "FAILED_PRECONDITION") -> None:
        super().__init__(message)
        self.status = status


def _errors() -> Any:
    import docker.errors

    return docker.errors


def _call(action: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` with Docker's errors turned into ours, naming ``action``."""
    errors = _errors()
    try:
        return fn(*args, **kwargs)
    except errors.NotFound as exc:
        raise SwarmError(f"{action}: {short_reason(exc)}", "NOT_FOUND") from exc
    except errors.APIError as exc:
        raise SwarmError(f"{action}: {short_reason(exc)}") from exc
    except errors.DockerException as exc:
        raise DockerError(f"{action}: {exc}") from exc


def ingress_mesh_supported() -> bool:
    """Whether this node's kernel has IPVS, which the ingress routing mesh needs."""
    return os.path.exists(IPVS_PROC) or os.path.isdir(IPVS_SYS)


def default_address(route_table: str = _ROUTE_TABLE) -> str:
    """The node's IPv4 address on its default route ("" when it has none).

    A UDP socket "connected" to the gateway makes the kernel pick the source address it would
    use; no packet is sent.
    """
    try:
        with open(route_table, encoding="ascii") as table:
            rows = [line.split() for line in table.readlines()[1:]]
    except OSError:
        return ""
    for row in rows:
        if len(row) > 2 and row[1] == "00000000":
            gateway = socket.inet_ntoa(struct.pack("<L", int(row[2], 16)))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.connect((gateway, 9))
                except OSError:
                    return ""
                return str(probe.getsockname()[0])
    return ""


def _node(attrs: Mapping[str, Any]) -> pb.SwarmNode:
    spec = attrs.get("Spec") or {}
    status = attrs.get("Status") or {}
    manager = attrs.get("ManagerStatus") or {}
    return pb.SwarmNode(
        id=attrs.get("ID", ""),
        hostname=(attrs.get("Description") or {}).get("Hostname", ""),
        role=spec.get("Role", ""),
        availability=spec.get("Availability", ""),
        state=status.get("State", ""),
        labels=dict(spec.get("Labels") or {}),
        manager_reachability=manager.get("Reachability", ""),
        leader=bool(manager.get("Leader")),
        addr=status.get("Addr", ""),
    )


def status(engine: Engine) -> pb.SwarmStatusResponse:
    """The node's swarm state; on a manager also the nodes and the managers' quorum."""
    client = engine.client
    info = _call("asking the engine for its swarm state", client.info)
    swarm = info.get("Swarm") or {}
    reply = pb.SwarmStatusResponse(
        state=swarm.get("LocalNodeState", "") or "inactive",
        node_id=swarm.get("NodeID", ""),
        is_manager=bool(swarm.get("ControlAvailable")),
        cluster_id=(swarm.get("Cluster") or {}).get("ID", ""),
        ingress_mesh=ingress_mesh_supported(),
        address=default_address(),
        error=swarm.get("Error", ""),
        remote_managers=[m.get("Addr", "") for m in swarm.get("RemoteManagers") or []],
    )
    if reply.is_manager:
        try:
            nodes = _call("listing the swarm's nodes", client.api.nodes)
        except SwarmError as exc:
            # A manager that cannot reach a leader (quorum lost, or it is just back and still
            # catching up) answers for itself only: that is the state to report, not a failure.
            reply.error = str(exc)
            return reply
        reply.nodes.extend(sorted((_node(n) for n in nodes), key=lambda n: n.hostname))
        managers = [n for n in reply.nodes if n.role == "manager"]
        reachable = [n for n in managers if n.manager_reachability == "reachable"]
        reply.managers = len(managers)
        reply.reachable_managers = len(reachable)
        reply.quorum = len(reachable) * 2 > len(managers)
    return reply


def init(engine: Engine, advertise_addr: str) -> pb.SwarmStatusResponse:
    """Makes the node the first manager of a new swarm; a node in a swarm stays as it is."""
    current = status(engine)
    if current.state == "active":
        return current
    address = advertise_addr or current.address
    if not address:
        raise SwarmError("the node has no default route: name the address to advertise")
    _call(
        "initialising the swarm",
        engine.client.api.init_swarm,
        advertise_addr=address,
        listen_addr=f"0.0.0.0:{SWARM_PORT}",
    )
    return status(engine)


def join_tokens(engine: Engine) -> pb.SwarmJoinTokensResponse:
    """The swarm's join tokens and this manager's address (manager only)."""
    current = status(engine)
    if not current.is_manager:
        raise SwarmError("this node is not a swarm manager: ask a manager for join tokens")
    attrs = _call("reading the swarm's join tokens", engine.client.api.inspect_swarm)
    tokens = attrs.get("JoinTokens") or {}
    own = next((n for n in current.nodes if n.id == current.node_id), None)
    addr = (own.addr if own else "") or current.address
    return pb.SwarmJoinTokensResponse(
        worker_token=tokens.get("Worker", ""),
        manager_token=tokens.get("Manager", ""),
        manager_addr=f"{addr}:{SWARM_PORT}",
    )


def join(
    engine: Engine, remote_addr: str, token: str, advertise_addr: str
) -> pb.SwarmStatusResponse:
    """Joins the swarm of the manager at ``remote_addr``; a member stays as it is.

    A node that is in another swarm is refused: leaving it is a decision for the caller.
    """
    current = status(engine)
    if current.state == "active":
        return current
    if current.state in ("pending", "error"):
        # A join that never completed (the manager went away): start afresh.
        _call("leaving an unfinished join", engine.client.api.leave_swarm, force=True)
    address = advertise_addr or current.address
    try:
        _call(
            "joining the swarm",
            engine.client.api.join_swarm,
            remote_addrs=[remote_addr],
            join_token=token,
            advertise_addr=address or None,
            listen_addr=f"0.0.0.0:{SWARM_PORT}",
        )
    except SwarmError as exc:
        # The engine's message may quote the request; never let the token travel on in it.
        raise SwarmError(str(exc).replace(token, "<token>"), exc.status) from None
    return status(engine)


def leave(engine: Engine, *, force: bool) -> pb.SwarmStatusResponse:
    """Leaves the swarm; a node in none stays as it is."""
    current = status(engine)
    if current.state == "inactive":
        return current
    _call("leaving the swarm", engine.client.api.leave_swarm, force=force)
    # Stopped tasks the swarm kept as history may stay behind on a node that leaves; with
    # the swarm gone nobody else would ever remove them.
    api = engine.client.api
    for container in _call(
        "listing swarm task containers",
        api.containers,
        all=True,
        filters={"label": SWARM_TASK_LABEL},
    ):
        _call("removing a swarm task container", api.remove_container, container["Id"], force=True)
    return status(engine)


def update_node(engine: Engine, request: pb.SwarmUpdateNodeRequest) -> pb.SwarmNode:
    """Sets a node's role, availability and kombify's labels on it (manager only)."""
    client = engine.client.api
    attrs = _call(
        f"inspecting swarm node `{request.node_id}`", client.inspect_node, request.node_id
    )
    spec = dict(attrs.get("Spec") or {})
    labels = {
        k: v for k, v in (spec.get("Labels") or {}).items() if not k.startswith(KOMBIFY_NODE_LABELS)
    }
    labels.update(request.labels)
    spec["Labels"] = labels
    if request.role:
        spec["Role"] = request.role
    if request.availability:
        spec["Availability"] = request.availability
    if spec != attrs.get("Spec"):
        version = int((attrs.get("Version") or {}).get("Index", 0))
        _call(
            f"updating swarm node `{request.node_id}`",
            client.update_node,
            request.node_id,
            version,
            spec,
        )
        attrs = _call(
            f"inspecting swarm node `{request.node_id}`", client.inspect_node, request.node_id
        )
    return _node(attrs)


def remove_node(engine: Engine, node_id: str, *, force: bool) -> None:
    """Removes a node from the swarm's list; one already gone is fine."""
    try:
        _call(
            f"removing swarm node `{node_id}`", engine.client.api.remove_node, node_id, force=force
        )
    except SwarmError as exc:
        if exc.status != "NOT_FOUND":
            raise
