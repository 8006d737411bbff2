"""InspectDrift: what runs on the node's engine beside or against the manifest in effect.

Kinds (agent.proto ``Drift``):

- ``changed``: a managed container of a manifest service whose image, env, published ports
  or mounts differ from its spec. Env values of keys that look secret are never shown.
- ``extra``: a container with this agent's labels that the manifest does not account for
  (a service not in it, a replica index beyond its count, a second container for a replica).
- ``unmanaged``: a container without the agent's label; the agent never removes those.
- ``missing-service``: a manifest service with no container at all.
- ``missing-volume``: a named volume or absolute bind source of a spec that does not exist.

Everything here blocks (engine calls); the servicer runs it on a thread.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from typing import Any

from kombify.agent import manifest as mf
from kombify.agent.engine import L_MANAGED, L_NODE, L_REPLICA, L_SERVICE, Engine, env_dict
from kombify.agent.proto import pb

_SECRET_WORDS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY", "CREDENTIAL")
_ANONYMOUS_VOLUME = re.compile(r"^[0-9a-f]{64}$")
_ANY_ADDRESS = ("", "0.0.0.0")


# Docker puts this on the containers of Swarm tasks (see kombify/agent/swarm_services.py).
SWARM_TASK_LABEL = "com.docker.swarm.service.id"


def is_secret(key: str) -> bool:
    """Whether an env key's name says its value must not be shown."""
    return any(word in key.upper() for word in _SECRET_WORDS)


def _value(key: str, value: str) -> str:
    return "(hidden)" if is_secret(key) else f'"{value}"'


def _name(attrs: dict[str, Any]) -> str:
    return str(attrs.get("Name") or attrs.get("Id", "")[:12]).lstrip("/")


def _labels(attrs: dict[str, Any]) -> dict[str, str]:
    return dict((attrs.get("Config") or {}).get("Labels") or {})


def _replica(labels: dict[str, str]) -> int:
    try:
        return int(labels.get(L_REPLICA, "0"))
    except ValueError:
        return -1


def _running_first(attrs: dict[str, Any], canonical: str) -> tuple[bool, bool, str]:
    running = (attrs.get("State") or {}).get("Running", False)
    return (_name(attrs) != canonical, not running, _name(attrs))


def inspect(engine: Engine, manifest: pb.Manifest) -> list[pb.Drift]:
    """Every drift on the node's engine against ``manifest`` (blocking).

    Raises:
        DockerError: The engine does not answer.
    """
    specs = {spec.name: spec for spec in manifest.services}
    drifts: list[pb.Drift] = []
    ours: dict[str, dict[int, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for attrs in engine.inspect_all():
        labels = _labels(attrs)
        if SWARM_TASK_LABEL in labels:
            continue  # a Swarm task: the swarm's manager runs it, not this node's manifest
        if labels.get(L_MANAGED) != "true":
            image = (attrs.get("Config") or {}).get("Image", "?")
            state = (attrs.get("State") or {}).get("Status", "?")
            drifts.append(
                pb.Drift(
                    kind="unmanaged",
                    container=_name(attrs),
                    detail=f"not started by kombify: image {image}, {state}",
                )
            )
        elif labels.get(L_NODE) == engine.node:  # another agent's containers are its own
            ours[labels.get(L_SERVICE, "")][_replica(labels)].append(attrs)
    for service, groups in sorted(ours.items()):
        if service not in specs:
            for attrs in (a for group in groups.values() for a in group):
                drifts.append(
                    pb.Drift(
                        kind="extra",
                        service=service,
                        container=_name(attrs),
                        detail=f"service `{service}` is not in the manifest in effect",
                    )
                )
    images: dict[str, dict[str, str]] = {}
    for spec in manifest.services:
        drifts.extend(_service(engine, spec, ours.get(spec.name, {}), images))
        drifts.extend(_volumes(engine, spec))
    return drifts


def _service(
    engine: Engine,
    spec: pb.ServiceSpec,
    groups: dict[int, list[dict[str, Any]]],
    images: dict[str, dict[str, str]],
) -> list[pb.Drift]:
    if not groups:
        return [pb.Drift(kind="missing-service", service=spec.name, detail="no container runs it")]
    count = mf.replicas(spec)
    found = []
    for replica, group in sorted(groups.items()):
        canonical = engine.container_name(spec.name, replica)
        group = sorted(group, key=lambda a: _running_first(a, canonical))
        if not 0 <= replica < count:
            extra, why = group, f"replica {replica} beyond the {count} the manifest asks for"
        else:
            first, extra = group[0], group[1:]
            why = f"a second container for replica {replica} (besides `{_name(first)}`)"
            image_id = str(first.get("Image", ""))
            if image_id not in images:
                images[image_id] = engine.image_env(image_id)
            differences = _differences(spec, replica, first, images[image_id])
            if differences:
                found.append(
                    pb.Drift(
                        kind="changed",
                        service=spec.name,
                        container=_name(first),
                        detail="; ".join(differences),
                    )
                )
        for attrs in extra:
            found.append(
                pb.Drift(kind="extra", service=spec.name, container=_name(attrs), detail=why)
            )
    return found


def _differences(
    spec: pb.ServiceSpec, replica: int, attrs: dict[str, Any], image_env: dict[str, str]
) -> list[str]:
    config = attrs.get("Config") or {}
    found = []
    if config.get("Image") != spec.image:
        found.append(f'image: spec "{spec.image}", running "{config.get("Image", "")}"')
    found.extend(_env(dict(spec.env), env_dict(config.get("Env") or []), image_env))
    found.extend(_ports(spec, replica, (attrs.get("HostConfig") or {}).get("PortBindings")))
    found.extend(_mounts(spec, attrs.get("Mounts") or []))
    return found


def _env(want: dict[str, str], running: dict[str, str], image: dict[str, str]) -> list[str]:
    found = []
    for key, value in sorted(want.items()):
        if key not in running:
            found.append(f"env {key}: spec {_value(key, value)}, not set in the container")
        elif running[key] != value:
            found.append(_env_differs(key, "spec", "the spec", value, running[key]))
    for key, value in sorted(running.items()):
        if key in want:
            continue
        if key not in image:
            found.append(f"env {key}: not in the spec, running {_value(key, value)}")
        elif image[key] != value:
            found.append(_env_differs(key, "image", "the image's", image[key], value))
    return found


def _env_differs(key: str, source: str, owner: str, expected: str, running: str) -> str:
    """One env difference against ``source`` (spec or image); secret values never shown."""
    if is_secret(key):
        return f"env {key}: differs from {owner}"
    return f"env {key}: {source} {_value(key, expected)}, running {_value(key, running)}"


def _port_text(bound: tuple[str, str, str]) -> str:
    key, host_ip, host_port = bound
    return f"{host_ip + ':' if host_ip else ''}{host_port}->{key}"


def _ports(spec: pb.ServiceSpec, replica: int, bindings: Any) -> list[str]:
    want = set()
    if replica == 0:  # only the first replica publishes (docs/agent.md, "Replicas and ports")
        for port in spec.ports:
            if port.host_port:
                key = f"{port.container_port}/{port.protocol or 'tcp'}"
                host_ip = "" if port.host_ip in _ANY_ADDRESS else port.host_ip
                want.add((key, host_ip, str(port.host_port)))
    running = set()
    for key, binds in (bindings or {}).items():
        for bind in binds or []:
            host_ip = bind.get("HostIp") or ""
            host_ip = "" if host_ip in _ANY_ADDRESS else host_ip
            running.add((str(key), host_ip, str(bind.get("HostPort") or "")))
    if want == running:
        return []
    spec_text = ", ".join(sorted(map(_port_text, want))) or "none"
    running_text = ", ".join(sorted(map(_port_text, running))) or "none"
    return [f"ports: spec {spec_text}, running {running_text}"]


def _mount_text(source: str, read_only: bool) -> str:
    return f"{source}{' (read-only)' if read_only else ''}"


def _mounts(spec: pb.ServiceSpec, mounts: list[dict[str, Any]]) -> list[str]:
    want = {os.path.normpath(v.target): (_source(v.source), v.read_only) for v in spec.volumes}
    running: dict[str, tuple[str, bool]] = {}
    for mount in mounts:
        target = os.path.normpath(str(mount.get("Destination", "")))
        kind = mount.get("Type")
        source = str(mount.get("Name") if kind == "volume" else mount.get("Source") or "")
        if kind == "volume" and target not in want and _ANONYMOUS_VOLUME.match(source):
            continue  # a VOLUME of the image, made by Docker for every container
        running[target] = (_source(source), not mount.get("RW", True))
    found = []
    for target in sorted(set(want) | set(running)):
        spec_side, running_side = want.get(target), running.get(target)
        if spec_side == running_side:
            continue
        spec_text = _mount_text(*spec_side) if spec_side else "none"
        running_text = _mount_text(*running_side) if running_side else "none"
        found.append(f"volume {target}: spec {spec_text}, running {running_text}")
    return found


def _source(source: str) -> str:
    return os.path.normpath(source) if source.startswith("/") else source


def _volumes(engine: Engine, spec: pb.ServiceSpec) -> list[pb.Drift]:
    found = []
    for source in sorted({v.source for v in spec.volumes}):
        if source.startswith("/"):
            if not os.path.exists(source):
                detail = f"bind-mount source {source} does not exist on the node"
                found.append(pb.Drift(kind="missing-volume", service=spec.name, detail=detail))
        elif not engine.volume_exists(source):
            detail = f"named volume `{source}` does not exist"
            found.append(pb.Drift(kind="missing-volume", service=spec.name, detail=detail))
    return found
