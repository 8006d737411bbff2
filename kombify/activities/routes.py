"""ApplyRoutes and ObserveRoutes: a stack's routes into its reverse proxy, and read back.

Reads ``routes.json`` from the plan's work dir (kombify.unifier.routes), finds the address of
every node that runs a remote upstream, renders the proxy's whole config
(kombify.unifier.caddy) and has the proxy node's agent load it. Idempotent: the same routes
load the same config, and Caddy swaps configs without a restart. ObserveRoutes asks the
proxy what it routes now (``kombify routes``), beside what the deployed revision wants.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from kombify.activities.agent import AgentActivities, node_identity
from kombify.activities.deploy import simulation_name, user_error
from kombify.activities.ssh import node_session
from kombify.contracts.deploy import NodeTarget, PrepareInput
from kombify.contracts.routes import RouteSeen, RoutesInput, RoutesQuery, RoutesResult, RoutesSeen
from kombify.errors import KombifyError, NotFoundError, SpecError, SshError
from kombify.unifier import unify
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

    def all(self) -> list[Any]:
        """Every activity of this class, for the worker's registry."""
        return [self.apply_routes, self.observe_routes]

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

    async def _ask_proxy(
        self, query: RoutesQuery, target: NodeTarget, routes: dict[str, Any]
    ) -> Any:
        from kombify.agent.proto import pb

        identity = node_identity(query.organisation, query.stack, target.name)
        request = pb.ApplyRoutesRequest(
            proxy_service=str(routes["proxy"]["service"]),
            internal_ca=routes["tls"]["issuer"] == "internal",
            read_only=True,
        )
        async with node_session(target) as session, self.agent.agent(session, identity) as client:
            return await client.apply_routes(request)

    def _https(self, query: RoutesQuery, target: NodeTarget) -> str:
        if not target.simulated:
            return f"{target.host}:443"
        from kombify.sim.client import docker_client
        from kombify.sim.engine import SimEngine

        client = docker_client()
        try:
            info = SimEngine(client).find(simulation_name(query.stack))
        finally:
            client.close()
        ports = (
            next((dict(n.ports) for n in info.nodes if n.name == target.name), {}) if info else {}
        )
        return f"127.0.0.1:{ports[443]}" if 443 in ports else ""

    @activity.defn(name="ObserveRoutes")
    async def observe_routes(self, query: RoutesQuery) -> RoutesSeen:
        """The deployed revision's routes beside what its proxy routes now, asked live."""
        deploy = self.agent.deploy
        prepare = PrepareInput("", query.organisation, query.stack, query.revision, query.simulate)
        try:
            stack, k = await asyncio.to_thread(deploy._load, prepare)
            _, targets, instances = await asyncio.to_thread(
                deploy._targets, k, query.simulate, create=False
            )
            routes = json.loads(unify(k).files[ROUTES_FILE])
        except (SpecError, NotFoundError) as exc:
            raise user_error(exc) from exc
        except KombifyError as exc:
            raise ApplicationError(exc.message, type=exc.code) from exc
        proxy = routes.get("proxy")
        issuer = str(routes["tls"]["issuer"])
        if proxy is None:
            return RoutesSeen("", "", False, "this stack has no reverse proxy", issuer, "")
        wanted = {str(r["host"]): r for r in routes["routes"]}
        target = next((t for t in targets if t.name == proxy["node"]), None)
        error, live, root, https = "", None, "", ""
        if target is None:
            error = f"the proxy's node `{proxy['node']}` is not running"
        else:
            try:
                _, (pinned,), _ = await asyncio.to_thread(
                    deploy._pin, stack, k, [target], instances
                )
                https = await asyncio.to_thread(self._https, query, pinned)
                async with asyncio.timeout(20):
                    reply = await self._ask_proxy(query, pinned, routes)
                live, root = set(reply.hosts), reply.root_ca_pem
            except TimeoutError:
                error = "the proxy's node did not answer within 20 s"
            except KombifyError as exc:
                error = exc.message
        seen = [
            RouteSeen(
                f"https://{host}",
                str(route["service"]),
                [
                    f"{route['service']}:{route['port']} on {u['node']}"
                    if u["local"]
                    else f"{u['node']}:{u['host_port']}"
                    for u in route["upstreams"]
                ],
                "unknown" if live is None else ("routed" if host in live else "missing"),
            )
            for host, route in wanted.items()
        ]
        seen += [
            RouteSeen(f"https://{host}", "", [], "not-wanted")
            for host in sorted((live or set()) - wanted.keys())
        ]
        return RoutesSeen(
            proxy["node"], proxy["service"], live is not None, error, issuer, https, seen, root
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
