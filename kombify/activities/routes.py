"""ApplyRoutes: load the stack's routes into its reverse proxy, through the proxy node's agent.

Reads ``routes.json`` from the plan's work dir (kombify.unifier.routes), finds the address of
every node that runs a remote upstream, renders the proxy's whole config
(kombify.unifier.caddy) and has the proxy node's agent load it. Idempotent: the same routes
load the same config, and Caddy swaps configs without a restart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from kombify.activities.agent import AgentActivities, node_identity
from kombify.activities.ssh import node_session
from kombify.contracts.deploy import NodeTarget
from kombify.contracts.routes import RoutesInput, RoutesResult
from kombify.errors import KombifyError, SshError
from kombify.unifier.caddy import MissingAddress, caddy_config
from kombify.unifier.routes import ROUTES_FILE

# The proxy's root certificate, beside the stack's work dir: public, for `kombify routes --ca`.
ROOT_CA_FILE = "proxy-root.crt"
SOURCE = "routes"


def root_ca_path(workdir: Path) -> Path:
    """Where the stack's proxy root certificate is kept (``stacks/<org>/<stack>/``)."""
    return workdir.parent / ROOT_CA_FILE


def read_routes(workdir: Path) -> dict[str, Any] | None:
    """The plan's ``routes.json``; None when the plan has none (written before routes)."""
    path = workdir / ROUTES_FILE
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_bytes())
    return data


async def node_address(node: NodeTarget) -> str:
    """The address the other nodes of the stack reach ``node`` at.

    A real node: the address kombify reaches it at (its ``address`` in the kombination; the
    proxy is in the same homelab). A simulated node is dialled through a port published on
    127.0.0.1, so it is asked which address its SSH server answered on: its address on the
    simulation's network, which the other simulated nodes reach.
    """
    if not node.simulated:
        return node.host
    async with node_session(node) as session:
        result = await session.run('echo "$SSH_CONNECTION"')
    fields = result.stdout.split()
    if len(fields) != 4:
        raise SshError(f"node `{node.name}`: cannot tell its address ({result.stdout.strip()!r})")
    return fields[2]


class RoutesActivities:
    """The ApplyRoutes activity, on top of the agent activities (sessions, certificates)."""

    def __init__(self, agent: AgentActivities) -> None:
        self.agent = agent

    def _log(self, request: RoutesInput, message: str) -> None:
        self.agent.deploy.log(request.deployment_id, SOURCE, message)

    @activity.defn(name="ApplyRoutes")
    async def apply_routes(self, request: RoutesInput) -> RoutesResult:
        """Load the stack's routes into its proxy; what it routes afterwards."""
        from kombify.agent.proto import pb

        workdir = Path(request.workdir)
        routes = read_routes(workdir)
        if routes is None or routes.get("proxy") is None:
            return RoutesResult("skipped", "no reverse proxy in this stack")
        proxy = routes["proxy"]
        targets = {n.name: n for n in request.nodes}
        target = targets.get(proxy["node"])
        if target is None:
            raise ApplicationError(
                f"the proxy's node `{proxy['node']}` is not among the stack's running nodes",
                type="proxy-node-missing",
            )
        try:
            remote = sorted(
                {u["node"] for r in routes["routes"] for u in r["upstreams"] if not u["local"]}
            )
            addresses = {name: await node_address(targets[name]) for name in remote}
            config = caddy_config(routes, addresses)
            organisation, stack = workdir.parts[-3:-1]
            identity = node_identity(organisation, stack, target.name)
            request_pb = pb.ApplyRoutesRequest(
                config_json=json.dumps(config, sort_keys=True),
                proxy_service=str(proxy["service"]),
                routes=len(routes["routes"]),
                internal_ca=routes["tls"]["issuer"] == "internal",
            )
            async with (
                node_session(target) as session,
                self.agent.agent(session, identity) as client,
            ):
                reply = await client.apply_routes(request_pb)
        except (KeyError, MissingAddress) as exc:
            raise ApplicationError(
                f"node `{exc.args[0]}` runs an exposed service but is not running",
                type="upstream-node-missing",
            ) from exc
        except KombifyError as exc:
            raise ApplicationError(exc.message, type=exc.code, non_retryable=exc.permanent) from exc
        if reply.root_ca_pem:
            path = root_ca_path(workdir)
            path.write_text(reply.root_ca_pem)
        for line in _route_lines(routes, addresses):
            self._log(request, line)
        self._log(request, f"proxy on `{target.name}`: {reply.message}")
        hosts = list(reply.hosts)
        if not routes["routes"]:
            return RoutesResult("skipped", "the stack exposes no service", target.name, hosts)
        return RoutesResult(
            "done", f"{len(hosts)} route(s) through `{target.name}`", target.name, hosts
        )


def _route_lines(routes: dict[str, Any], addresses: dict[str, str]) -> list[str]:
    lines = []
    for route in routes["routes"]:
        ends = [
            f"{route['service']}:{route['port']} on {u['node']} (by name)"
            if u["local"]
            else f"{addresses[u['node']]}:{u['host_port']} on {u['node']}"
            for u in route["upstreams"]
        ]
        lines.append(f"https://{route['host']} -> {', '.join(ends)}")
    return lines
