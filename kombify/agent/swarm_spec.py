"""A stack's Swarm services as Docker Engine API specs: pure translation, no engine calls.

One ``SwarmServiceSpec`` becomes one ``ServiceSpec`` of the Engine API (the JSON body of
``POST /services/create``): replicas spread over nodes, the spec's constraints, the spec's
health check as the container's HEALTHCHECK (Swarm counts a task as running only once it is
healthy), rolling updates that roll back by themselves when a new task fails, and ports
published in the mode the control plane chose (``host`` where the nodes lack IPVS).
"""

from __future__ import annotations

import hashlib
import json
import shlex
from typing import Any
from urllib.parse import urlsplit

from google.protobuf import json_format

from kombify.agent import manifest as mf
from kombify.agent.proto import pb

L_STACK = "io.kombify.stack"
L_SERVICE = "io.kombify.swarm-service"
L_HASH = "io.kombify.config-hash"
L_REVISION = "io.kombify.revision"
PUBLISH_MODES = ("host", "ingress")
# The swarm platform's attachable overlay network (platforms/swarm.yaml, platform.network).
OVERLAY_NETWORK = "kombify-overlay"
MODES = ("replicated", "global")
_S = 1_000_000_000  # the Engine API counts durations in nanoseconds
_MS = 1_000_000
# Swarm restarts a failed task after this pause (its default of 5 s only slows recovery).
_RESTART_DELAY = 1 * _S
_MIN_MONITOR = 5 * _S
_RESTART = {
    pb.RESTART_POLICY_NO: "none",
    pb.RESTART_POLICY_ON_FAILURE: "on-failure",
    pb.RESTART_POLICY_ALWAYS: "any",
    pb.RESTART_POLICY_UNLESS_STOPPED: "any",
    pb.RESTART_POLICY_UNSPECIFIED: "any",
}


class SwarmManifestInvalid(ValueError):
    """The swarm manifest cannot be applied; the message names the service and field."""


def swarm_name(stack: str, service: str) -> str:
    """The service's name in the swarm: one swarm may run several stacks."""
    return f"{stack}_{service}"


def validate(manifest: pb.SwarmManifest) -> None:
    """Checks what the swarm cannot apply (the node checks, plus mode and publish mode).

    Raises:
        SwarmManifestInvalid: Naming the service and field at fault.
    """
    if not manifest.stack:
        raise SwarmManifestInvalid("the swarm manifest names no stack")
    if manifest.publish_mode not in ("", *PUBLISH_MODES):
        raise SwarmManifestInvalid(
            f"publish_mode `{manifest.publish_mode}` is not one of {', '.join(PUBLISH_MODES)}"
        )
    try:
        mf.validate(pb.Manifest(services=[s.spec for s in manifest.services]))
    except mf.ManifestInvalid as exc:
        raise SwarmManifestInvalid(str(exc)) from exc
    for service in manifest.services:
        if service.mode not in ("", *MODES):
            raise SwarmManifestInvalid(
                f"service `{service.spec.name}`: mode `{service.mode}` is not one of "
                f"{', '.join(MODES)}"
            )


def config_hash(
    service: pb.SwarmServiceSpec, manifest: pb.SwarmManifest, *, of_tasks: bool = False
) -> str:
    """A short hash of everything that shapes the service, checks included.

    ``of_tasks``: without the replica count, for the tasks' own label, so a scale leaves the
    running tasks alone (a change of the label would replace every one of them).
    """
    shaped = pb.SwarmServiceSpec()
    shaped.CopyFrom(service)
    if of_tasks:
        shaped.spec.ClearField("replicas")
    data = json_format.MessageToDict(shaped, preserving_proto_field_name=True)
    data["_network"] = manifest.network
    data["_publish"] = manifest.publish_mode or "host"
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def healthcheck(check: pb.HealthCheck) -> dict[str, Any] | None:
    """The spec's health check as a container HEALTHCHECK, run by Docker inside the task.

    http -> wget (or curl) of the URL inside the container; tcp -> a connect to the port on
    the container's loopback (nc, else bash's /dev/tcp); cmd -> CMD-SHELL as it is.
    """
    if check.http_url:
        test = _http_test(check.http_url)
    elif check.tcp_port:
        port = check.tcp_port
        test = (
            f"nc -z -w 2 127.0.0.1 {port} 2>/dev/null || nc -w 2 127.0.0.1 {port} </dev/null "
            f"2>/dev/null || bash -c '</dev/tcp/127.0.0.1/{port}'"
        )
    elif check.cmd:
        test = check.cmd
    else:
        return None
    interval = check.interval_ms or mf.DEFAULT_INTERVAL_MS
    return {
        "Test": ["CMD-SHELL", test],
        "Interval": interval * _MS,
        "Timeout": (check.timeout_ms or mf.DEFAULT_PROBE_TIMEOUT_MS) * _MS,
        "Retries": check.retries or mf.DEFAULT_RETRIES,
        "StartPeriod": check.start_period_ms * _MS,
    }


def _http_test(url: str) -> str:
    quoted = shlex.quote(url)
    # Any certificate is accepted, as the agent's own probe does (self-signed is the norm).
    insecure_wget = " --no-check-certificate" if urlsplit(url).scheme == "https" else ""
    return (
        f"if command -v wget >/dev/null 2>&1; then wget -q -O /dev/null{insecure_wget} {quoted}; "
        f"else curl -fsSk -o /dev/null {quoted}; fi"
    )


def monitor_ns(check: pb.HealthCheck) -> int:
    """How long Swarm watches a new task before it counts the update of it as done.

    A task that fails within this window makes the update fail and roll back: it must cover
    the check's own decision time (grace, then ``retries`` failed probes).
    """
    if not (check.http_url or check.tcp_port or check.cmd):
        return _MIN_MONITOR
    interval = (check.interval_ms or mf.DEFAULT_INTERVAL_MS) * _MS
    timeout = (check.timeout_ms or mf.DEFAULT_PROBE_TIMEOUT_MS) * _MS
    retries = check.retries or mf.DEFAULT_RETRIES
    decide = max(check.start_period_ms * _MS, interval) + retries * (interval + timeout)
    return max(_MIN_MONITOR, decide)


def _mount(volume: pb.VolumeMount) -> dict[str, Any]:
    kind = "bind" if volume.source.startswith("/") else "volume"
    return {
        "Type": kind,
        "Source": volume.source,
        "Target": volume.target,
        "ReadOnly": volume.read_only,
    }


def _ports(spec: pb.ServiceSpec, publish_mode: str) -> list[dict[str, Any]]:
    return [
        {
            "Protocol": port.protocol or "tcp",
            "TargetPort": port.container_port,
            "PublishedPort": port.host_port,
            "PublishMode": publish_mode,
        }
        for port in spec.ports
        if port.host_port
    ]


def service_spec(service: pb.SwarmServiceSpec, manifest: pb.SwarmManifest) -> dict[str, Any]:
    """The Engine API ``ServiceSpec`` of one service of ``manifest``."""
    spec = service.spec
    digest = config_hash(service, manifest)
    container_labels = {
        **dict(spec.labels),
        L_STACK: manifest.stack,
        L_SERVICE: spec.name,
        L_HASH: config_hash(service, manifest, of_tasks=True),
    }
    container: dict[str, Any] = {
        "Image": spec.image,
        "Env": [f"{k}={v}" for k, v in sorted(spec.env.items())],
        "Labels": container_labels,
        "Mounts": [_mount(v) for v in spec.volumes],
        "StopGracePeriod": (spec.stop_grace_seconds or mf.DEFAULT_STOP_GRACE_S) * _S,
    }
    if spec.command:
        container["Args"] = list(spec.command)  # like the node agent: replaces the image's CMD
    check = healthcheck(spec.healthcheck)
    if check is not None:
        container["Healthcheck"] = check
    placement: dict[str, Any] = {"Constraints": list(service.constraints)}
    mode = service.mode or "replicated"
    if mode == "replicated":
        placement["Preferences"] = [{"Spread": {"SpreadDescriptor": "node.id"}}]
    publish_mode = manifest.publish_mode or "host"
    network = {"Target": manifest.network, "Aliases": [spec.name]} if manifest.network else None
    return {
        "Name": swarm_name(manifest.stack, spec.name),
        "Labels": {
            L_STACK: manifest.stack,
            L_SERVICE: spec.name,
            L_HASH: digest,
            L_REVISION: manifest.revision,
        },
        "TaskTemplate": {
            "ContainerSpec": container,
            "RestartPolicy": {
                "Condition": _RESTART[spec.restart_policy],
                "Delay": _RESTART_DELAY,
                "MaxAttempts": 0,
            },
            "Placement": placement,
            "Networks": [network] if network else [],
        },
        "Mode": {"Replicated": {"Replicas": mf.replicas(spec)}}
        if mode == "replicated"
        else {"Global": {}},
        # One task at a time, the old one stopped first (a host-mode port is held by it);
        # a new task that fails within the monitor window rolls the whole update back.
        "UpdateConfig": {
            "Parallelism": 1,
            "Delay": 0,
            "FailureAction": "rollback",
            "Monitor": monitor_ns(spec.healthcheck),
            "MaxFailureRatio": 0,
            "Order": "stop-first",
        },
        "RollbackConfig": {
            "Parallelism": 0,
            "Delay": 0,
            "FailureAction": "pause",
            "Monitor": _MIN_MONITOR,
            "MaxFailureRatio": 0,
            "Order": "stop-first",
        },
        "EndpointSpec": {"Mode": "vip", "Ports": _ports(spec, publish_mode)},
    }
