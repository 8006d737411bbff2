"""KombiSim's lifecycle against a Docker engine: create, start, stop, restart, delete, inspect.

:class:`SimEngine` is synchronous (the Docker SDK is); call it from threads in async code
(``asyncio.to_thread``), as the Temporal activities and API routes do. Every method reads the
engine afresh: nothing is cached, so what it reports is what Docker says now. Every mutating
method is idempotent, so a retried activity never makes anything twice.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import docker.errors

from kombify.errors import ConflictError, DockerError, NotFoundError, SpecError
from kombify.locks import directory_lock
from kombify.names import check_simulation_name
from kombify.sim import internet, labels
from kombify.sim.converge import CARRIED_PATHS, Drift, drift, limits_of
from kombify.sim.image import ensure_node_image
from kombify.sim.keys import SimKeys, ensure_keys, remove_keys, sim_dir
from kombify.sim.models import (
    LOOPBACK,
    NODE_TYPES,
    NodeEvent,
    NodeInfo,
    NodeSpec,
    NodeStats,
    SimulationInfo,
    SimulationSpec,
    SshEndpoint,
    is_valid_name,
)

# Docker-in-Docker without --privileged (measured on these hosts, see ARCHITECTURE.md): every
# capability but SYS_RESOURCE/PERFMON/BPF/CHECKPOINT_RESTORE, which the sandbox lacks.
NODE_CAPABILITIES: tuple[str, ...] = (
    "SYS_ADMIN", "NET_ADMIN", "SYS_MODULE", "SYS_PTRACE", "SYS_TIME", "SYS_RAWIO", "MKNOD",
    "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_NICE", "LINUX_IMMUTABLE", "NET_BROADCAST",
    "SYS_BOOT", "SYS_PACCT", "SYS_TTY_CONFIG", "LEASE", "AUDIT_CONTROL", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "DAC_READ_SEARCH", "MAC_ADMIN", "MAC_OVERRIDE",
)
NODE_SECURITY_OPTS: tuple[str, ...] = ("seccomp=unconfined", "apparmor=unconfined")
# The inner dockerd needs the cgroup hierarchy, or its containers fail to apply cgroup config.
CGROUP_BIND = {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}}
INDEX_LABEL = labels.PREFIX + "index"
STOP_TIMEOUT = 10
_T = TypeVar("_T")
_R = TypeVar("_R")


def node_run_options(
    *,
    volume: str,
    state_volume: str,
    cpus: float,
    memory_mb: int,
    extra_ports: list[int] | None = None,
    host_ports: dict[int, int] | None = None,
) -> dict[str, Any]:
    """Host settings of a node container.

    ``host_ports`` maps container ports to the loopback host port they must keep (when a
    node is re-created); other ports get one Docker picks.

    Besides the inner engine's /var/lib/docker, /var/lib/kombify (where kombify unpacks its
    node agent) is a volume too, so it is written like a real node's disk: the container's
    own overlay root costs about 1 s of kernel time more per agent install (measured).
    """
    keep = host_ports or {}
    bindings: dict[int, tuple[str] | tuple[str, int]] = {}
    for port in [22, *(extra_ports or [])]:
        # Docker picks a free host port on loopback, unless the port is kept from the
        # container this one replaces (so a recreated node answers where it did before).
        bindings[port] = (LOOPBACK, keep[port]) if port in keep else (LOOPBACK,)
    return {
        "binds": {
            **CGROUP_BIND,
            volume: {"bind": "/var/lib/docker", "mode": "rw"},
            state_volume: {"bind": "/var/lib/kombify", "mode": "rw"},
        },
        "port_bindings": bindings,
        "cap_add": list(NODE_CAPABILITIES),
        "security_opt": list(NODE_SECURITY_OPTS),
        "cgroupns": "host",
        # wireguard-go makes its interface on the tun device (kombify/agent/vpn.py).
        "devices": ["/dev/net/tun:/dev/net/tun:rwm"],
        "init": True,
        "nano_cpus": int(cpus * 1e9),
        "mem_limit": f"{memory_mb}m",
    }


# Docker's own floor for --cpus; below it the engine answers a raw 400.
MIN_CPUS = 0.01
MIN_MEMORY_MB = 64


def host_cpus() -> int:
    """CPUs of this machine: the most a node may be given (Docker refuses more)."""
    return os.cpu_count() or 1


def host_memory_mb() -> int:
    """Memory of this machine in MiB: the most a node may be given."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (ValueError, OSError):  # no sysconf names on this platform: no upper bound known
        return 2**40


def _limit_problems(node: NodeSpec) -> list[str]:
    problems: list[str] = []
    cpus, most = node.cpus, host_cpus()
    if not isinstance(cpus, (int, float)) or not math.isfinite(cpus) or not (
        MIN_CPUS <= cpus <= most
    ):
        problems.append(
            f"node `{node.name}`: cpus must be a number from {MIN_CPUS} to {most} "
            f"(this machine's CPUs), got {cpus}"
        )
    memory, memory_most = node.memory_mb, host_memory_mb()
    if not isinstance(memory, int) or not MIN_MEMORY_MB <= memory <= memory_most:
        problems.append(
            f"node `{node.name}`: memory must be from {MIN_MEMORY_MB} MiB to {memory_most} MiB "
            f"(this machine's memory), got {memory} MiB"
        )
    return problems


def validate_spec(spec: SimulationSpec) -> None:
    """Reject a spec Docker would choke on, before anything is made.

    The one check of a :class:`SimulationSpec`, whoever wrote it (CLI options, an API request,
    a template): a node's cpus are finite, at least Docker's 0.01 and at most this machine's
    CPU count; its memory is at least 64 MiB and at most this machine's memory.

    Raises:
        SpecError: A bad name, type, limit, or a duplicate node.
    """
    problems: list[str] = []
    if not is_valid_name(spec.name):
        problems.append(f"simulation name `{spec.name}` must be a DNS label (a-z, 0-9, -)")
    if not spec.nodes:
        problems.append("a simulation needs at least one node")
    seen: set[str] = set()
    for node in spec.nodes:
        if not is_valid_name(node.name):
            problems.append(f"node name `{node.name}` must be a DNS label (a-z, 0-9, -)")
        if node.name in seen:
            problems.append(f"node `{node.name}` appears twice")
        seen.add(node.name)
        if not is_valid_name(node.group):
            problems.append(f"group `{node.group}` of node `{node.name}` must be a DNS label")
        if node.type not in NODE_TYPES:
            problems.append(f"node `{node.name}`: type must be one of {', '.join(NODE_TYPES)}")
        problems += _limit_problems(node)
    if problems:
        raise SpecError("; ".join(problems))


class SimEngine:
    """Simulations as Docker containers, networks and volumes (synchronous).

    Args:
        client: A ``docker.DockerClient`` (see :func:`kombify.sim.client.docker_client`).
        image: Node image to use; default: :func:`ensure_node_image` builds or finds it.
    """

    def __init__(self, client: Any, *, image: str | None = None) -> None:
        self.client = client
        self.api = client.api
        self._image = image

    # ----------------------------------------------------------------- create & lifecycle
    def ensure_image(self, progress: Callable[[str], None] | None = None) -> str:
        """The node image tag, built on first use (see :mod:`kombify.sim.image`)."""
        if self._image is None:
            self._image = ensure_node_image(self.client, progress=progress)
        return self._image

    def create(
        self,
        spec: SimulationSpec,
        *,
        start: bool = True,
        on_started: Callable[[NodeInfo], None] | None = None,
        converge: bool = False,
        report: Callable[[str], None] | None = None,
    ) -> SimulationInfo:
        """Make every missing network, volume and container of ``spec``, then start them.

        Idempotent: existing objects are kept (also when their limits differ, unless
        ``converge``), so calling it again after a crash finishes the job without duplicates.
        Nodes that exist but are not in ``spec`` are left alone.

        With ``converge``, an existing node is made to match its spec: new CPU and memory
        limits are applied in place; other differences (published ports, type, login user,
        group, role, or a key this ``KOMBIFY_HOME`` does not hold) re-create its container
        with the same volumes, SSH host key, files under /etc/kombify and /etc/docker, and
        loopback host ports. A node that matches is not touched.

        Everything runs at once: the networks are made while each node's volume is, and each
        node is started as soon as its container exists, so the engine never waits for the
        slowest node before booting the others.

        Args:
            spec: The simulation.
            start: Start the nodes (else leave them created).
            on_started: Called (from a worker thread) with each node as soon as it runs, so a
                caller can wait for its SSH while the other nodes are still starting.
            converge: Make existing nodes match ``spec`` (see above).
            report: Called (from a worker thread) with one line per node changed by converge.

        A create that fails removes what it made (networks, volumes, containers, the key
        folder) and keeps what was there before it, so nothing is left that ``list`` does not
        show and a retry still finds an earlier attempt's objects.

        Raises:
            SpecError: The spec is invalid.
            ConflictError: A container name is taken by something that is not this node.
            DockerError: The engine failed.
        """
        validate_spec(spec)
        # One maker of a simulation at a time, across processes: a deploy's retry on another
        # worker can create it while the first attempt still does, and the engine then makes
        # two networks of one name (it does not refuse duplicates), which nodes cannot join.
        with directory_lock(sim_dir(spec.name)):
            before = self.leftovers(spec.name)
            had_keys = (sim_dir(spec.name) / "id_ed25519").exists()
            try:
                return self._create(
                    spec, start=start, on_started=on_started, converge=converge, report=report
                )
            except BaseException:
                self._remove_made(spec.name, before, keep_keys=had_keys)
                raise

    def _create(
        self,
        spec: SimulationSpec,
        *,
        start: bool,
        on_started: Callable[[NodeInfo], None] | None,
        converge: bool,
        report: Callable[[str], None] | None,
    ) -> SimulationInfo:
        keys = ensure_keys(spec.name)
        image = self.ensure_image()
        wanted: dict[str, dict[str, str]] = {
            labels.lan_network(spec.name): {
                **labels.base(spec.name), labels.DESCRIPTION: spec.description
            }
        }
        for node in spec.nodes:
            if node.type == "vps":
                wanted[labels.vps_network(spec.name, node.name)] = {
                    **labels.base(spec.name), labels.NODE: node.name
                }
        if internet.wanted(spec):
            wanted[labels.internet_network(spec.name)] = labels.base(spec.name)
        # Networks are submitted first: the pool runs jobs in order, so a node job waiting for
        # its network never holds the last thread while that network's job is still queued.
        with ThreadPoolExecutor(max_workers=min(len(wanted) + len(spec.nodes), 32)) as pool:
            networks = {
                name: pool.submit(self._ensure_network, name, tags)
                for name, tags in wanted.items()
            }
            web: Future[internet.Internet] | None = None
            if internet.wanted(spec):
                web = pool.submit(
                    self._internet, networks[labels.internet_network(spec.name)]
                )
            nodes = []
            for index, node in enumerate(spec.nodes):
                network = (
                    labels.vps_network(spec.name, node.name)
                    if node.type == "vps"
                    else labels.lan_network(spec.name)
                )
                nodes.append(
                    pool.submit(
                        self._ensure_node, spec.name, node, index=index, image=image,
                        keys=keys, network=network, network_ready=networks[network],
                        start=start, on_started=on_started, converge=converge,
                        report=report, web=web,
                    )
                )
            jobs: list[Future[Any]] = [*networks.values(), *([web] if web else []), *nodes]
            for job in jobs:
                job.result()  # re-raises the first failure once every job has ended
        return self.info(spec.name)

    def _remove_made(self, name: str, before: dict[str, list[str]], *, keep_keys: bool) -> None:
        """Remove the objects of ``name`` that are not in ``before`` (best effort)."""
        if not keep_keys:
            remove_keys(name)
        try:
            now = self.leftovers(name)
        except docker.errors.DockerException:
            return  # the engine is gone; the create's own error says so
        removals: list[tuple[str, Callable[..., Any], str, dict[str, Any]]] = [
            ("remove", self.api.remove_container, c, {"force": True, "v": True})
            for c in now["containers"] if c not in before["containers"]
        ]
        removals += [
            ("remove network", self.api.remove_network, n, {})
            for n in now["networks"] if n not in before["networks"]
        ]
        removals += [
            ("remove volume", self.api.remove_volume, v, {"force": True})
            for v in now["volumes"] if v not in before["volumes"]
        ]
        for what, method, target, options in removals:
            # The create's own error is what the caller needs; a failed cleanup must not hide it.
            with contextlib.suppress(DockerError):
                self._call(what, method, target, **options)

    def _ensure_node(
        self,
        sim: str,
        node: NodeSpec,
        *,
        index: int,
        image: str,
        keys: SimKeys,
        network: str,
        network_ready: Future[str],
        start: bool,
        on_started: Callable[[NodeInfo], None] | None,
        converge: bool = False,
        report: Callable[[str], None] | None = None,
        web: Future[internet.Internet] | None = None,
    ) -> None:
        container_id = self._ensure_container(
            sim, node, index=index, network=network, network_ready=network_ready, image=image,
            keys=keys, converge=converge, report=report, web=web,
        )
        network_ready.result()  # a container can be made before its network, not started
        if not start:
            return
        self._start_container(container_id)
        if on_started is not None:
            found = self._containers({"id": [container_id]})
            if found:
                on_started(self._node_info(found[0])[1])

    def start(self, name: str) -> SimulationInfo:
        """Start every node that is not running (idempotent).

        Raises:
            NotFoundError: No such simulation.
        """
        check_simulation_name(name)
        info = self.info(name)
        _parallel(
            self._start_container,
            [node.container_id for node in info.nodes if node.state != "running"],
        )
        return self.info(name)

    def stop(self, name: str, *, timeout: int = STOP_TIMEOUT) -> SimulationInfo:
        """Stop every running node, letting its inner dockerd shut down (idempotent).

        Raises:
            NotFoundError: No such simulation.
        """
        check_simulation_name(name)
        info = self.info(name)
        running = [node.container_id for node in info.nodes if node.state in ("running", "paused")]
        _parallel(lambda cid: self._call("stop", self.api.stop, cid, timeout=timeout), running)
        return self.info(name)

    def restart(self, name: str, *, timeout: int = STOP_TIMEOUT) -> SimulationInfo:
        """Restart every node (stopped ones are started).

        Raises:
            NotFoundError: No such simulation.
        """
        check_simulation_name(name)
        info = self.info(name)
        _parallel(
            lambda cid: self._call("restart", self.api.restart, cid, timeout=timeout),
            [node.container_id for node in info.nodes],
        )
        return self.info(name)

    def delete(self, name: str) -> bool:
        """Remove every container, network and volume of ``name``, and its keys.

        Idempotent: deleting what is gone is a no-op.

        Returns:
            Whether anything was there to remove.
        """
        check_simulation_name(name)
        found = False
        containers = self._containers(labels.sim_filter(name))
        key_dirs = {
            Path(c["Labels"][labels.IDENTITY]).parent
            for c in containers
            if c.get("Labels", {}).get(labels.IDENTITY)
        }
        if containers:
            found = True
            _parallel(
                lambda cid: self._call(
                    "remove", self.api.remove_container, cid, force=True, v=True
                ),
                [container["Id"] for container in containers],
            )
        for network in self.api.networks(filters=labels.sim_filter(name)):
            found = True
            self._call("remove network", self.api.remove_network, network["Id"])
        volumes = self.api.volumes(filters=labels.sim_filter(name)).get("Volumes") or []
        for volume in volumes:
            found = True
            self._call("remove volume", self.api.remove_volume, volume["Name"], force=True)
        remove_keys(name)
        for directory in key_dirs:
            # Only a directory shaped like one ensure_keys made: never rm what a label names.
            if directory.name == name and directory.parent.name == "sims":
                shutil.rmtree(directory, ignore_errors=True)
        return found

    def leftovers(self, name: str) -> dict[str, list[str]]:
        """Names of every object still labelled with simulation ``name`` (empty when clean)."""
        check_simulation_name(name)
        filters = labels.sim_filter(name)
        volumes = self.api.volumes(filters=filters).get("Volumes") or []
        return {
            "containers": [
                c["Names"][0].lstrip("/") for c in self.api.containers(all=True, filters=filters)
            ],
            "networks": [n["Name"] for n in self.api.networks(filters=filters)],
            "volumes": [v["Name"] for v in volumes],
        }

    # ----------------------------------------------------------------------- inspection
    def find(self, name: str) -> SimulationInfo | None:
        """The simulation as the engine reports it now, or None when it has no containers."""
        check_simulation_name(name)
        containers = self._containers(labels.sim_filter(name))
        if not containers:
            return None
        return self._info_from(name, containers)

    def info(self, name: str) -> SimulationInfo:
        """The simulation as the engine reports it now.

        Raises:
            NotFoundError: No container of that simulation exists.
        """
        info = self.find(name)
        if info is None:
            raise NotFoundError(f"simulation `{name}` does not exist")
        return info

    def list_all(self) -> list[SimulationInfo]:
        """Every simulation on this engine, by name."""
        by_sim: dict[str, list[dict[str, Any]]] = {}
        for container in self._containers(labels.all_filter()):
            by_sim.setdefault(container["Labels"][labels.SIMULATION], []).append(container)
        return [self._info_from(name, by_sim[name]) for name in sorted(by_sim)]

    def export(self, name: str) -> SimulationSpec:
        """A spec that re-creates simulation ``name`` (read from its labels)."""
        info = self.info(name)
        return SimulationSpec(
            name=name, description=info.description, nodes=[node.spec for node in info.nodes]
        )

    def stats(self, name: str) -> list[NodeStats]:
        """CPU, memory and network use of every running node, sampled by the engine now."""
        info = self.info(name)
        running = [node for node in info.nodes if node.state == "running"]
        return _parallel(self._node_stats, running)

    def watch(
        self, name: str, *, since: float | None = None, until: float | None = None
    ) -> Iterator[NodeEvent]:
        """Docker's own container events for ``name`` (blocks; stops at ``until`` if given)."""
        check_simulation_name(name)
        stream = self.api.events(
            since=since,
            until=until,
            filters={"type": ["container"], **labels.sim_filter(name)},
            decode=True,
        )
        try:
            for event in stream:
                attributes = event.get("Actor", {}).get("Attributes", {})
                yield NodeEvent(
                    simulation=name,
                    node=str(attributes.get(labels.NODE, "")),
                    action=str(event.get("Action", "")).split(":")[0],
                    time=float(event.get("timeNano", 0)) / 1e9 or float(event.get("time", 0)),
                )
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()

    # -------------------------------------------------------------------------- helpers
    def _containers(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        try:
            result: list[dict[str, Any]] = self.api.containers(all=True, filters=filters)
        except docker.errors.APIError as exc:
            raise DockerError(f"cannot list containers: {exc}") from exc
        return result

    def _info_from(self, name: str, containers: list[dict[str, Any]]) -> SimulationInfo:
        # Limits changed in place are not in the labels: the engine's own settings say them.
        limits = _parallel(self._limits, [container["Id"] for container in containers])
        nodes = sorted(
            (
                self._node_info(container, limits=limit)
                for container, limit in zip(containers, limits, strict=True)
            ),
            key=lambda pair: pair[0],
        )
        description = ""
        for network in self.api.networks(names=[labels.lan_network(name)]):
            if network.get("Name") == labels.lan_network(name):
                description = (network.get("Labels") or {}).get(labels.DESCRIPTION, "")
        return SimulationInfo(name=name, description=description, nodes=[n for _, n in nodes])

    def _limits(self, container_id: str) -> tuple[float, int] | None:
        attrs = self._call("inspect", self.api.inspect_container, container_id)
        return limits_of(attrs) if attrs else None

    @staticmethod
    def _node_info(
        container: dict[str, Any], *, limits: tuple[float, int] | None = None
    ) -> tuple[int, NodeInfo]:
        tags = container.get("Labels") or {}
        try:
            spec = NodeSpec.from_dict(json.loads(tags.get(labels.SPEC, "{}")))
        except (TypeError, ValueError):
            spec = NodeSpec(name=tags.get(labels.NODE, "?"), group=tags.get(labels.GROUP, "?"))
        if limits is not None:
            spec = replace(spec, cpus=limits[0], memory_mb=limits[1])
        published: dict[int, int] = {}
        for port in container.get("Ports") or []:
            # Only loopback bindings count: nodes are never reached through other addresses.
            if port.get("PublicPort") and port.get("IP") in (LOOPBACK, "", None):
                published[int(port["PrivatePort"])] = int(port["PublicPort"])
        ssh: SshEndpoint | None = None
        state = str(container.get("State", "unknown"))
        identity = tags.get(labels.IDENTITY, "")
        if state == "running" and 22 in published and identity:
            ssh = SshEndpoint(
                host=LOOPBACK,
                port=published[22],
                user=spec.user,
                identity_file=identity,
                known_hosts_file=str(Path(identity).with_name("known_hosts")),
            )
        published.pop(22, None)
        index = int(tags.get(INDEX_LABEL, "0"))
        return index, NodeInfo(
            spec=spec, state=state, container_id=container["Id"], ssh=ssh, ports=published
        )

    def _internet(self, ready: Future[str]) -> internet.Internet:
        """The simulated internet once its network exists (its subnet is the engine's pick)."""
        attrs = self._call("inspect network", self.api.inspect_network, ready.result())
        if not attrs:
            raise DockerError(f"network `{ready.result()}` vanished while nodes were made")
        return internet.from_network(attrs)

    def _join_internet(self, container_id: str, node: NodeSpec, web: internet.Internet) -> None:
        try:
            self.api.connect_container_to_network(
                container_id, web.network, aliases=[node.name]
            )
        except docker.errors.APIError as exc:
            if "already exists" not in str(exc.explanation or exc):  # a retry joined it
                raise DockerError(f"cannot connect node `{node.name}`: {exc}") from exc

    def _ensure_network(self, name: str, tags: dict[str, str]) -> str:
        # The internet stand-in is internal: no route out through it, so a node's default
        # route and published ports stay on its own network (the engine orders internal
        # networks last), and it joins nodes to each other only.
        internal = name == labels.internet_network(tags.get(labels.SIMULATION, ""))
        try:
            self.api.create_network(
                name, driver="bridge", labels=tags, check_duplicate=True, internal=internal
            )
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: it exists (an earlier attempt, or a race)
                raise DockerError(f"cannot create network `{name}`: {exc}") from exc
        return name

    def _ensure_container(
        self,
        sim: str,
        node: NodeSpec,
        *,
        index: int,
        network: str,
        image: str,
        keys: SimKeys,
        network_ready: Future[str] | None = None,
        converge: bool = False,
        report: Callable[[str], None] | None = None,
        web: Future[internet.Internet] | None = None,
    ) -> str:
        """The id of ``node``'s container, created (not started) when missing.

        The engine accepts a container whose network does not exist yet (it checks at start),
        so the container is made while ``network_ready`` still runs; an engine that refuses
        answers 404, and then the create is repeated once the network exists.
        """
        name = labels.container_name(sim, node.name)
        existing = self._existing(name, sim, node.name)
        if existing is not None:
            if not converge:
                return existing
            return self._converge(
                existing, sim, node, index=index, network=network, image=image, keys=keys,
                network_ready=network_ready, report=report, web=web,
            )
        return self._create_container(
            sim, node, index=index, network=network, image=image, keys=keys,
            network_ready=network_ready, web=web,
        )

    def _create_container(
        self,
        sim: str,
        node: NodeSpec,
        *,
        index: int,
        network: str,
        image: str,
        keys: SimKeys,
        network_ready: Future[str] | None = None,
        host_ports: dict[int, int] | None = None,
        web: Future[internet.Internet] | None = None,
    ) -> str:
        """Make ``node``'s volumes (kept when they exist) and its container; its id.

        In a simulation with an internet (``web``) the container joins it before it starts.
        """
        on_web = web.result() if web is not None else None
        name = labels.container_name(sim, node.name)
        volume = labels.volume_name(sim, node.name)
        state_volume = labels.state_volume_name(sim, node.name)
        for vol in (volume, state_volume):
            self._call(
                "create volume", self.api.create_volume, name=vol,
                labels={**labels.base(sim), labels.NODE: node.name},
            )
        tags = {
            **labels.base(sim),
            labels.GROUP: node.group,
            labels.NODE: node.name,
            labels.TYPE: node.type,
            labels.ROLE: node.role,
            labels.SPEC: json.dumps(node.to_dict(), sort_keys=True),
            INDEX_LABEL: str(index),
            labels.IDENTITY: str(keys.private_key),
        }
        host_config = self.api.create_host_config(
            network_mode=network,
            **node_run_options(
                volume=volume,
                state_volume=state_volume,
                cpus=node.cpus,
                memory_mb=node.memory_mb,
                extra_ports=node.ports,
                host_ports=host_ports,
            ),
        )
        # `--security-opt systempaths=unconfined` is CLI sugar; the API takes empty path lists.
        host_config["MaskedPaths"] = []
        host_config["ReadonlyPaths"] = []
        networking = self.api.create_networking_config(
            {network: self.api.create_endpoint_config(aliases=[node.name])}
        )
        try:
            created = self.api.create_container(
                image,
                name=name,
                hostname=node.name,
                labels=tags,
                environment={
                    "KOMBIFY_AUTHORIZED_KEY": keys.public_key,
                    "KOMBIFY_USER": node.user,
                    # mDNS only where there is a LAN to announce on: not on a vps node.
                    "KOMBIFY_MDNS": "1" if node.type == "local" else "0",
                    **internet.node_env(node, on_web),
                },
                ports=[22, *node.ports],
                host_config=host_config,
                networking_config=networking,
                stop_timeout=STOP_TIMEOUT,
                detach=True,
            )
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # created concurrently by a retry: use that one
                again = self._existing(name, sim, node.name)
                if again is not None:
                    if on_web is not None:
                        self._join_internet(again, node, on_web)
                    return again
            if exc.status_code == 404 and network_ready is not None:
                network_ready.result()
                return self._create_container(
                    sim, node, index=index, network=network, image=image, keys=keys,
                    host_ports=host_ports, web=web,
                )
            raise DockerError(f"cannot create node `{node.name}`: {exc}") from exc
        if on_web is not None:
            self._join_internet(str(created["Id"]), node, on_web)
        return str(created["Id"])

    def _converge(
        self,
        container_id: str,
        sim: str,
        node: NodeSpec,
        *,
        index: int,
        network: str,
        image: str,
        keys: SimKeys,
        network_ready: Future[str] | None,
        report: Callable[[str], None] | None,
        web: Future[internet.Internet] | None = None,
    ) -> str:
        """Make an existing node container match ``node`` (see :meth:`create`); its id."""
        attrs = self._call("inspect", self.api.inspect_container, container_id)
        if attrs is None:  # removed meanwhile: make it as new
            return self._create_container(
                sim, node, index=index, network=network, image=image, keys=keys,
                network_ready=network_ready, web=web,
            )
        change = drift(attrs, node, keys)
        online = internet.drift_reason(attrs, node, web.result() if web is not None else None)
        if online:
            change = replace(change, recreate=[*change.recreate, online])
        if change.recreate:
            new_id = self._recreate(
                attrs, sim, node, index=index, network=network, image=image, keys=keys,
                network_ready=network_ready, change=change, web=web,
            )
            if report is not None:
                report(
                    f"node `{node.name}` re-created to {'; '.join(change.recreate)} "
                    "(its disks and SSH host key are kept)"
                )
            return new_id
        if change.limits:
            self._update_limits(container_id, change)
            if report is not None:
                report(f"node `{node.name}`: {', '.join(change.limits)} (changed in place)")
        return container_id

    def _update_limits(self, container_id: str, change: Drift) -> None:
        """Apply CPU and memory limits to a running container (the SDK lacks NanoCpus)."""
        body = {
            "NanoCpus": change.nano_cpus,
            "Memory": change.memory,
            # As at create (`--memory` alone): swap up to the same amount again.
            "MemorySwap": change.memory * 2,
        }
        try:
            response = self.api._post_json(
                self.api._url("/containers/{0}/update", container_id), data=body
            )
            self.api._raise_for_status(response)
        except docker.errors.APIError as exc:
            raise DockerError(
                f"cannot change the limits of node container {container_id[:12]}: "
                f"{exc.explanation or exc}"
            ) from exc

    def _recreate(
        self,
        attrs: dict[str, Any],
        sim: str,
        node: NodeSpec,
        *,
        index: int,
        network: str,
        image: str,
        keys: SimKeys,
        network_ready: Future[str] | None,
        change: Drift,
        web: Future[internet.Internet] | None = None,
    ) -> str:
        """Replace a node's container, keeping its volumes, host key and loopback ports."""
        old = str(attrs["Id"])
        running = bool((attrs.get("State") or {}).get("Running"))
        # Stopped first, gracefully: its dockerd must let go of /var/lib/docker before the new
        # container mounts the same volume.
        self._call("stop", self.api.stop, old, timeout=STOP_TIMEOUT)
        carried = [
            (path, data) for path in CARRIED_PATHS if (data := self._read_path(old, path))
        ]
        # Named volumes survive the removal (only anonymous ones would go with it).
        self._call("remove", self.api.remove_container, old, force=True)
        keep = {
            port: host
            for port, host in change.host_ports.items()
            if host and (port == 22 or port in node.ports)
        }
        new = self._create_container(
            sim, node, index=index, network=network, image=image, keys=keys,
            network_ready=network_ready, host_ports=keep, web=web,
        )
        self._write_paths(new, carried)
        if not running:
            return new
        if network_ready is not None:
            network_ready.result()
        try:
            self._start_container(new)
        except DockerError:
            if not keep:
                raise
            # A kept host port was taken meanwhile: publish on ports Docker picks instead.
            self._call("remove", self.api.remove_container, new, force=True)
            new = self._create_container(
                sim, node, index=index, network=network, image=image, keys=keys, web=web
            )
            self._write_paths(new, carried)
        return new

    def _read_path(self, container_id: str, path: str) -> bytes:
        """A tar of ``path`` in the container (empty when it has none)."""
        found = self._call("read files", self.api.get_archive, container_id, path)
        return b"".join(found[0]) if found else b""

    def _write_paths(self, container_id: str, carried: list[tuple[str, bytes]]) -> None:
        for path, data in carried:
            parent = str(Path(path).parent)
            self._call("write files", self.api.put_archive, container_id, parent, data)

    def _existing(self, name: str, sim: str, node: str) -> str | None:
        try:
            attrs = self.api.inspect_container(name)
        except docker.errors.NotFound:
            return None
        tags = attrs.get("Config", {}).get("Labels") or {}
        if tags.get(labels.SIMULATION) != sim or tags.get(labels.NODE) != node:
            raise ConflictError(f"container `{name}` exists and is not node `{node}` of `{sim}`")
        return str(attrs["Id"])

    def _start_container(self, container_id: str) -> None:
        self._call("start", self.api.start, container_id)

    def _node_stats(self, node: NodeInfo) -> NodeStats:
        raw = self._call("stats", self.api.stats, node.container_id, stream=False)
        return stats_from_engine(node.name, raw)

    @staticmethod
    def _call(what: str, method: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        try:
            return method(*args, **kwargs)
        except docker.errors.NotFound:
            # Gone already: the desired end state of every idempotent step that hits this.
            return None  # type: ignore[return-value]
        except docker.errors.APIError as exc:
            if exc.status_code == 304:  # "already started/stopped"
                return None  # type: ignore[return-value]
            raise DockerError(f"docker {what} failed: {exc.explanation or exc}") from exc


def stats_from_engine(name: str, raw: dict[str, Any]) -> NodeStats:
    """A :class:`NodeStats` from one ``docker stats --no-stream`` sample."""
    cpu = raw.get("cpu_stats") or {}
    pre = raw.get("precpu_stats") or {}
    cpu_delta = cpu.get("cpu_usage", {}).get("total_usage", 0) - pre.get("cpu_usage", {}).get(
        "total_usage", 0
    )
    system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or len(cpu.get("cpu_usage", {}).get("percpu_usage") or [1])
    percent = (cpu_delta / system_delta) * online * 100.0 if system_delta > 0 else 0.0
    memory = raw.get("memory_stats") or {}
    detail = memory.get("stats") or {}
    # Like `docker stats`: page cache is reclaimable, so it is not "used".
    cache = detail.get("total_inactive_file", detail.get("inactive_file", detail.get("cache", 0)))
    used = max(int(memory.get("usage", 0)) - int(cache), 0)
    networks = raw.get("networks") or {}
    return NodeStats(
        name=name,
        cpu_percent=max(percent, 0.0),
        memory_bytes=used,
        memory_limit_bytes=int(memory.get("limit", 0)),
        rx_bytes=sum(int(net.get("rx_bytes", 0)) for net in networks.values()),
        tx_bytes=sum(int(net.get("tx_bytes", 0)) for net in networks.values()),
    )


def _parallel(function: Callable[[_R], _T], items: list[_R]) -> list[_T]:
    """``function`` over ``items`` in threads: Docker calls are I/O, and nodes independent."""
    if not items:
        return []
    if len(items) == 1:
        return [function(items[0])]
    with ThreadPoolExecutor(max_workers=min(len(items), 16)) as pool:
        return list(pool.map(function, items))


def wait_gone(engine: SimEngine, name: str, *, timeout: float = 30) -> bool:
    """Poll until nothing of ``name`` is left (Docker removes asynchronously at times)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(engine.leftovers(name).values()):
            return True
        time.sleep(0.2)
    return False
