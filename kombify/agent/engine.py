"""The node's Docker engine as the agent uses it: only containers labelled as its own.

Every function here blocks (the docker SDK is synchronous); the agent calls them through
``asyncio.to_thread``. Docker errors become :class:`~kombify.errors.DockerError` here, at the
boundary, with the operation and the container or image named.
"""

from __future__ import annotations

import os
import re
import signal
import struct
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import IO, Any

from kombify.agent import manifest as mf
from kombify.agent.engine_socket import EngineSocketUnsupported, engine_version
from kombify.agent.proto import pb
from kombify.errors import DockerError

L_MANAGED = "io.kombify.managed"
L_NODE = "io.kombify.node"
L_SERVICE = "io.kombify.service"
L_REPLICA = "io.kombify.replica"
L_HASH = "io.kombify.config-hash"
L_REVISION = "io.kombify.revision"
L_GRACE = "io.kombify.stop-grace"

# The docker SDK's request URL (``for http+docker://localhost/v1.41/...``): noise to a user.
_ENGINE_URL = re.compile(r"\d{3} (Client|Server) Error for http\+docker://\S+")
_RESTART = {
    pb.RESTART_POLICY_NO: None,
    pb.RESTART_POLICY_ALWAYS: {"Name": "always"},
    pb.RESTART_POLICY_UNLESS_STOPPED: {"Name": "unless-stopped"},
    pb.RESTART_POLICY_UNSPECIFIED: {"Name": "unless-stopped"},
    pb.RESTART_POLICY_ON_FAILURE: {"Name": "on-failure", "MaximumRetryCount": 5},
}


def _errors() -> Any:
    """``docker.errors``, imported when an exception is matched against it.

    The docker SDK (with requests and urllib3) is 40 % of the agent's start-up imports, so
    this module never imports it at the top: the SDK is loaded beside the server's start
    (see :class:`Engine`), and by the time a call can raise, it is there.
    """
    import docker.errors

    return docker.errors


def short_reason(exc: Exception, limit: int = 160) -> str:
    """The engine's own explanation of ``exc``, one line, without the SDK's request URL."""
    text = str(getattr(exc, "explanation", None) or exc).strip().splitlines()[0:1]
    line = _ENGINE_URL.sub("", text[0] if text else type(exc).__name__).strip(" :")
    return line if len(line) <= limit else line[: limit - 3] + "..."


@contextmanager
def docker_errors(action: str) -> Iterator[None]:
    """Re-raises docker SDK errors as DockerError naming ``action``."""
    try:
        yield
    except _errors().DockerException as exc:
        raise DockerError(f"{action}: {exc}") from exc


@dataclass(frozen=True)
class Managed:
    """One container the agent manages, as read from the engine.

    Attributes:
        id: The full container id.
        name: Its name (without Docker's leading slash).
        service: Value of the service label.
        replica: Replica index from its label.
        config_hash: Hash of the spec that created it.
        state: Docker state (running, exited, created ...).
        image: Image reference it was created from.
        labels: All its labels.
        since: When it entered its state (Docker's StartedAt, or FinishedAt once stopped).
        exit_code: Docker's ExitCode of its last run (0 while it never ended).
        restart_count: How often Docker's restart policy restarted it.
        oom_killed: Whether the kernel killed its last run for lack of memory.
    """

    id: str
    name: str
    service: str
    replica: int
    config_hash: str
    state: str
    image: str
    labels: Mapping[str, str] = field(default_factory=dict)
    since: str = ""
    exit_code: int = 0
    restart_count: int = 0
    oom_killed: bool = False

    @property
    def running(self) -> bool:
        """Whether Docker reports it running."""
        return self.state == "running"

    @property
    def stop_grace(self) -> int:
        """Seconds Docker waits between SIGTERM and SIGKILL for it."""
        return int(self.labels.get(L_GRACE, mf.DEFAULT_STOP_GRACE_S))


class Engine:
    """The agent's view of the local Docker engine.

    Args:
        client: A docker SDK client, or a future of one that is still being made (the agent
            loads the SDK beside its server's start; calls wait for it). A future also means
            "the engine of the environment", which lets ``version`` ask the engine's socket
            directly without waiting for the SDK.
        node: The node identity; containers carry it so two agents sharing an engine (tests,
            or a rehearsal next to a real node) never touch each other's containers.
        prefix: Prepended to container names.
        extra_labels: Labels added to every container the agent creates.
    """

    def __init__(
        self,
        client: Any,
        *,
        node: str,
        prefix: str = "kombify-",
        extra_labels: Mapping[str, str] | None = None,
    ) -> None:
        self._client = client
        self._client_lock = threading.Lock()
        self._network_lock = threading.Lock()
        self.node = node
        self.prefix = prefix
        self.extra_labels = dict(extra_labels or {})

    def container_name(self, service: str, replica: int) -> str:
        """The canonical name of a service's replica."""
        return f"{self.prefix}{service}-{replica}"

    @property
    def client(self) -> Any:
        """The docker SDK client (waits while the SDK is still loading).

        A node boots its engine and the agent at once, and the SDK asks the engine for its API
        version when the client is made: an agent that won that race must not keep the
        failure. The client is made again on the next call, until the engine answers.
        """
        with self._client_lock:
            if isinstance(self._client, Future):
                try:
                    self._client = self._client.result()
                except Exception:
                    import docker  # loaded by now: the future failed after importing it

                    self._client = docker.from_env()  # raises while the engine is still down
            return self._client

    def version(self) -> str:
        """The engine's version string."""
        if isinstance(self._client, Future) and not self._client.done():
            # The agent's first Health answers while the SDK still loads.
            try:
                return engine_version()
            except EngineSocketUnsupported:
                pass
            except OSError as exc:
                raise DockerError(f"asking the Docker engine for its version: {exc}") from exc
        with docker_errors("asking the Docker engine for its version"):
            return str(self.client.version().get("Version", "?"))

    def containers(self, service: str | None = None) -> list[Managed]:
        """Containers of this node (of one service when given), any state, by name."""
        labels = [f"{L_MANAGED}=true", f"{L_NODE}={self.node}"]
        if service is not None:
            labels.append(f"{L_SERVICE}={service}")
        with docker_errors("listing containers"):
            found = self.client.containers.list(all=True, filters={"label": labels})
            return sorted((self._managed(c) for c in found), key=lambda m: m.name)

    def _managed(self, container: Any) -> Managed:
        labels: dict[str, str] = container.labels or {}
        state = container.attrs.get("State") or {}
        return Managed(
            id=container.id,
            name=container.name,
            service=labels.get(L_SERVICE, ""),
            replica=int(labels.get(L_REPLICA, "0")),
            config_hash=labels.get(L_HASH, ""),
            state=container.status,
            image=container.attrs.get("Config", {}).get("Image", ""),
            labels=labels,
            since=_since(container.status, state),
            exit_code=int(state.get("ExitCode") or 0),
            restart_count=int(container.attrs.get("RestartCount") or 0),
            oom_killed=bool(state.get("OOMKilled")),
        )

    def events(self) -> Any:
        """A closable, blocking iterator of the engine's events about this node's containers.

        Only what changes whether a container runs: create, start, restart, die, kill, oom,
        destroy. ``close()`` from another thread ends a blocked iteration.
        """
        filters = {
            "type": ["container"],
            "label": [f"{L_MANAGED}=true", f"{L_NODE}={self.node}"],
            "event": ["create", "start", "restart", "die", "kill", "oom", "destroy"],
        }
        with docker_errors("following the engine's events"):
            return self.client.events(decode=True, filters=filters)

    def inspect_all(self) -> list[dict[str, Any]]:
        """``docker inspect`` of every container on the engine, managed or not, any state."""
        with docker_errors("listing containers"):
            return [c.attrs for c in self.client.containers.list(all=True)]

    def image_env(self, image_id: str) -> dict[str, str]:
        """The environment an image gives its containers (its Config.Env); {} when unknown."""
        try:
            config = self.client.images.get(image_id).attrs.get("Config") or {}
        except _errors().DockerException:
            return {}
        return env_dict(config.get("Env") or [])

    def volume_exists(self, name: str) -> bool:
        """Whether the named volume exists on the engine."""
        try:
            self.client.volumes.get(name)
        except _errors().NotFound:
            return False
        except _errors().DockerException as exc:
            raise DockerError(f"looking up volume `{name}`: {exc}") from exc
        return True

    def get(self, container_id: str) -> Managed:
        """Re-reads one container."""
        with docker_errors(f"inspecting container {container_id[:12]}"):
            return self._managed(self.client.containers.get(container_id))

    def ensure_image(self, image: str) -> None:
        """Makes sure ``image`` is present, pulling it when the node can.

        Raises:
            DockerError: Absent and not pullable; the message says how to ship it instead.
        """
        try:
            self.client.images.get(image)
            return
        except _errors().ImageNotFound:
            pass
        except _errors().DockerException as exc:
            raise DockerError(f"looking up image `{image}`: {exc}") from exc
        try:
            self.client.images.pull(image)
        except _errors().DockerException as exc:
            # By now kombify has shipped every image its own host has (StageImages, or the
            # rollout before ApplyServices), so a missing one is on neither machine.
            raise DockerError(
                f"image `{image}` is neither on the node nor on the machine running kombify, "
                f"and the node cannot pull it ({short_reason(exc)}): pull or build it on the "
                "machine running kombify and kombify ships it"
            ) from exc

    def create(self, spec: pb.ServiceSpec, replica: int, *, revision: str) -> Managed:
        """Creates and starts one replica of ``spec`` under its canonical name."""
        grace = spec.stop_grace_seconds or mf.DEFAULT_STOP_GRACE_S
        labels = {
            **self.extra_labels,
            **dict(spec.labels),
            L_MANAGED: "true",
            L_NODE: self.node,
            L_SERVICE: spec.name,
            L_REPLICA: str(replica),
            L_HASH: mf.config_hash(spec),
            L_REVISION: revision,
            L_GRACE: str(grace),
        }
        ports: dict[str, Any] = {}
        # One Docker engine binds a host port once: the service's first replica publishes it,
        # the others serve on the node's Docker network (docs/agent.md, "Replicas and ports").
        for p in spec.ports if replica == 0 else ():
            if p.host_port:
                key = f"{p.container_port}/{p.protocol or 'tcp'}"
                ports[key] = (p.host_ip, p.host_port) if p.host_ip else p.host_port
        volumes = {
            v.source: {"bind": v.target, "mode": "ro" if v.read_only else "rw"}
            for v in spec.volumes
        }
        name = self.container_name(spec.name, replica)
        network = self._network_args(spec)
        with docker_errors(f"creating container `{name}`"):
            container = self.client.containers.create(
                spec.image,
                command=list(spec.command) or None,
                name=name,
                environment=dict(spec.env),
                labels=labels,
                ports=ports,
                volumes=volumes,
                restart_policy=_RESTART[spec.restart_policy],
                detach=True,
                **network,
            )
        with docker_errors(f"starting container `{name}`"):
            try:
                container.start()
            except _errors().DockerException:
                container.remove(force=True)
                raise
            container.reload()
        return self._managed(container)

    def _network_args(self, spec: pb.ServiceSpec) -> dict[str, Any]:
        """``network``/``networking_config`` for ``spec.networks`` (the first; made if missing).

        The service's name is an alias there, so a proxy on the same network reaches every
        replica as ``<service>:<port>`` (docs/routes.md).
        """
        if not spec.networks:
            return {}
        network = spec.networks[0]
        self.ensure_network(network)
        endpoint = self.client.api.create_endpoint_config(aliases=[spec.name])
        return {"network": network, "networking_config": {network: endpoint}}

    def ensure_network(self, name: str) -> None:
        """Makes the bridge network ``name`` unless it exists.

        Under a lock: services converge side by side, and Docker does not refuse a second
        network of the same name.
        """
        with self._network_lock, docker_errors(f"making network `{name}`"):
            # The engine's name filter matches substrings ("kombify" finds "kombify-overlay").
            if not any(n.name == name for n in self.client.networks.list(names=[name])):
                self.client.networks.create(name, driver="bridge")

    def start(self, container_id: str) -> None:
        """Starts a stopped container."""
        with docker_errors(f"starting container {container_id[:12]}"):
            self.client.containers.get(container_id).start()

    def stop(self, item: Managed) -> None:
        """Stops a container, allowing it its grace period."""
        with docker_errors(f"stopping container `{item.name}`"):
            self.client.containers.get(item.id).stop(timeout=item.stop_grace)

    def restart(self, item: Managed) -> None:
        """Restarts a container, allowing it its grace period."""
        with docker_errors(f"restarting container `{item.name}`"):
            self.client.containers.get(item.id).restart(timeout=item.stop_grace)

    def rename(self, container_id: str, name: str) -> None:
        """Renames a container (to park the old revision while the new one is tried)."""
        with docker_errors(f"renaming container {container_id[:12]} to `{name}`"):
            self.client.containers.get(container_id).rename(name)

    def remove(self, container_id: str) -> None:
        """Removes a container, running or not; already gone is fine."""
        try:
            self.client.containers.get(container_id).remove(force=True)
        except _errors().NotFound:
            return
        except _errors().DockerException as exc:
            raise DockerError(f"removing container {container_id[:12]}: {exc}") from exc

    def exec(self, container_id: str, argv: list[str]) -> tuple[int, str]:
        """Runs ``argv`` inside a running container; exit code and combined output."""
        with docker_errors(f"running {argv[0]} in container {container_id[:12]}"):
            code, out = self.client.containers.get(container_id).exec_run(argv)
        return int(code), (out or b"").decode(errors="replace")

    def exec_timed(
        self, container_id: str, argv: list[str], timeout: float
    ) -> tuple[int | None, str]:
        """Runs ``argv`` inside a running container for at most ``timeout`` seconds.

        Returns:
            The exit code (None when the timeout ran out) and the combined output.
        """
        api = self.client.api
        with docker_errors(f"running {argv[0]} in container {container_id[:12]}"):
            exec_id = api.exec_create(container_id, argv, stdout=True, stderr=True)["Id"]
        done: Future[bytes] = Future()

        def run() -> None:  # the SDK's exec has no timeout: wait for it on a thread of its own
            try:
                done.set_result(bytes(api.exec_start(exec_id) or b""))
            except BaseException as exc:  # noqa: BLE001 - handed over to the waiting caller
                done.set_exception(exc)

        threading.Thread(target=run, daemon=True, name=f"exec-{exec_id[:8]}").start()
        try:
            out = done.result(timeout=timeout)
        except TimeoutError:
            self._kill_exec(exec_id)
            return None, ""
        except _errors().DockerException as exc:
            raise DockerError(f"running {argv[0]} in container {container_id[:12]}: {exc}") from exc
        with docker_errors(f"reading the exit code of {argv[0]} in {container_id[:12]}"):
            code = api.exec_inspect(exec_id).get("ExitCode")
        return (int(code) if code is not None else None), out.decode(errors="replace")

    def _kill_exec(self, exec_id: str) -> None:
        # Docker leaves a timed-out exec running; the agent runs beside dockerd (same PID
        # namespace, root), so it ends the probe itself. Best effort: a probe that cannot be
        # killed still counts as failed.
        try:
            pid = int(self.client.api.exec_inspect(exec_id).get("Pid") or 0)
            if pid > 0:
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, _errors().DockerException):
            pass

    def pid(self, container_id: str) -> int:
        """The main process id of a running container, as dockerd sees it (0 if not running)."""
        with docker_errors(f"inspecting container {container_id[:12]}"):
            container = self.client.containers.get(container_id)
        return int(container.attrs.get("State", {}).get("Pid") or 0)

    def log_tail(self, container_id: str, lines: int = 20) -> str:
        """The last lines a container printed (for explaining a failed health check)."""
        try:
            raw = self.client.containers.get(container_id).logs(tail=lines)
        except _errors().DockerException:
            return ""
        return bytes(raw).decode(errors="replace").strip()

    def log_stream(
        self, container_id: str, *, follow: bool, tail: int, since: float | None = None
    ) -> Any:
        """A closable iterator of log bytes (docker's CancellableStream)."""
        with docker_errors(f"reading logs of container {container_id[:12]}"):
            return self.client.containers.get(container_id).logs(
                stream=True, follow=follow, tail=tail or "all", since=since
            )

    def log_frames(
        self, container_id: str, *, follow: bool, tail: int, since: float | None = None
    ) -> LogFrames:
        """A container's log as (stream, bytes) frames, each line prefixed with its time.

        Docker counts ``tail`` over both streams together, so they are read as one
        multiplexed stream (the SDK's ``logs`` would merge them without saying which).

        Args:
            container_id: The container (created without a TTY, as the agent makes them).
            follow: Go on with new lines until closed.
            tail: Lines from the end to send first (0: all).
            since: Only lines written at or after this Unix time.
        """
        api = self.client.api
        params: dict[str, Any] = {
            "stdout": 1,
            "stderr": 1,
            "timestamps": 1,
            "follow": int(follow),
            "tail": str(tail) if tail else "all",
        }
        if since is not None:
            params["since"] = f"{since:.9f}"
        with docker_errors(f"reading logs of container {container_id[:12]}"):
            response = api._get(
                api._url("/containers/{0}/logs", container_id), params=params, stream=True
            )
            api._raise_for_status(response)
            api._disable_socket_timeout(api._get_raw_response_socket(response))
        return LogFrames(response)

    def exec_open(
        self,
        container_id: str,
        argv: list[str],
        *,
        tty: bool,
        stdin: bool,
        env: Mapping[str, str],
    ) -> tuple[str, Any]:
        """Starts ``argv`` in a running container, attached; its exec id and raw socket.

        Without a TTY the socket carries Docker's multiplexed stream (8-byte frame headers
        saying stdout or stderr); with one, the terminal's bytes as they are.
        """
        api = self.client.api
        with docker_errors(f"running {argv[0]} in container {container_id[:12]}"):
            exec_id = api.exec_create(
                container_id,
                argv,
                stdout=True,
                stderr=True,
                stdin=stdin,
                tty=tty,
                environment=dict(env) or None,
            )["Id"]
            attached = api.exec_start(exec_id, socket=True, tty=tty)
        raw = getattr(attached, "_sock", attached)
        raw.settimeout(None)  # an interactive command may be silent for as long as it likes
        return str(exec_id), raw

    def exec_resize(self, exec_id: str, rows: int, cols: int) -> None:
        """Resizes an exec's pseudo-terminal."""
        with docker_errors(f"resizing the terminal of exec {exec_id[:12]}"):
            self.client.api.exec_resize(exec_id, height=rows, width=cols)

    def exec_result(self, exec_id: str) -> tuple[bool, int | None]:
        """Whether the exec still runs, and its exit code once it ended."""
        with docker_errors(f"reading the exit code of exec {exec_id[:12]}"):
            found = self.client.api.exec_inspect(exec_id)
        code = found.get("ExitCode")
        return bool(found.get("Running")), (int(code) if code is not None else None)

    def load_image(self, tarball: IO[bytes]) -> list[str]:
        """Loads a ``docker save`` tarball; returns the tags (or ids) it held."""
        loaded: list[str] = []
        with docker_errors("loading an image tarball"):
            # The low-level API reports exactly what the tarball held; the high-level one
            # answers with every tag the resulting images happen to carry.
            for status in self.client.api.load_image(tarball):
                if "error" in status:
                    raise DockerError(f"loading an image tarball: {status['error']}")
                text = str(status.get("stream", "")).strip()
                for prefix in ("Loaded image: ", "Loaded image ID: "):
                    if text.startswith(prefix):
                        loaded.append(text.removeprefix(prefix))
        return loaded


class LogFrames:
    """Docker's multiplexed log stream read frame by frame: ("stdout" | "stderr", bytes)."""

    def __init__(self, response: Any) -> None:
        from docker.types.daemon import CancellableStream

        self.response = response
        # Its close shuts the socket down: closing the response itself would first try to
        # read a followed log to its end, and never return.
        self._closer = CancellableStream(iter(()), response)

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        raw = self.response.raw
        try:
            while len(header := raw.read(8)) == 8:
                kind, size = struct.unpack(">BxxxL", header)
                data = raw.read(size) if size else b""
                if size and not data:
                    return
                yield ("stderr" if kind == 2 else "stdout"), data
        except OSError:  # closed under the reader
            return

    def close(self) -> None:
        """Ends the stream (a blocked read returns)."""
        with suppress(OSError, _errors().DockerException):
            self._closer.close()


def env_dict(pairs: list[str]) -> dict[str, str]:
    """Docker's ``["KEY=value", ...]`` as a dict (a bare ``KEY`` has the value "")."""
    env: dict[str, str] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        env[key] = value
    return env


_NEVER = "0001-01-01T00:00:00Z"  # Docker's zero time: the event never happened


def _since(state: str, raw: dict[str, Any]) -> str:
    when = str(raw.get("StartedAt" if state in ("running", "restarting") else "FinishedAt") or "")
    return "" if when.startswith(_NEVER[:10]) else when
