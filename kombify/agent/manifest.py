"""Service manifests: validation, normalisation and the hashes that decide what changes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from google.protobuf import json_format

from kombify.agent.proto import pb

LABEL_PREFIX = "io.kombify."
DEFAULT_INTERVAL_MS = 1000
DEFAULT_PROBE_TIMEOUT_MS = 2000
DEFAULT_RETRIES = 3
DEFAULT_STOP_GRACE_S = 10


class ManifestInvalid(ValueError):
    """The manifest cannot be applied as given; the message names the service and field."""


def replicas(spec: pb.ServiceSpec) -> int:
    """How many containers ``spec`` asks for (0 in the message means 1)."""
    return spec.replicas or 1


def _canonical(message: Any) -> str:
    data = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def config_hash(spec: pb.ServiceSpec) -> str:
    """A short hash of everything that shapes one container of ``spec``.

    Replica count and health check are left out on purpose: scaling adds or removes
    containers without touching the others, and a new health check applies to the running
    containers as they are.
    """
    shaped = pb.ServiceSpec()
    shaped.CopyFrom(spec)
    shaped.ClearField("replicas")
    shaped.ClearField("healthcheck")
    if shaped.restart_policy == pb.RESTART_POLICY_UNSPECIFIED:
        shaped.restart_policy = pb.RESTART_POLICY_UNLESS_STOPPED
    return hashlib.sha256(_canonical(shaped).encode()).hexdigest()[:16]


def manifest_revision(manifest: pb.Manifest) -> str:
    """The manifest's own revision, or a content hash when the control plane sent none."""
    if manifest.revision:
        return manifest.revision
    return "sha256:" + hashlib.sha256(_canonical(manifest).encode()).hexdigest()[:16]


def validate(manifest: pb.Manifest) -> None:
    """Checks what the agent cannot apply.

    Raises:
        ManifestInvalid: With a message naming the service and the field at fault.
    """
    seen: set[str] = set()
    host_ports: dict[tuple[str, int], str] = {}
    for spec in manifest.services:
        where = f"service `{spec.name}`"
        if not spec.name or not all(c.isalnum() or c in "-_" for c in spec.name):
            raise ManifestInvalid(f"{where}: name must be letters, digits, '-' or '_'")
        if spec.name in seen:
            raise ManifestInvalid(f"{where}: listed twice")
        seen.add(spec.name)
        if not spec.image:
            raise ManifestInvalid(f"{where}: image is required")
        for label in spec.labels:
            if label.startswith(LABEL_PREFIX):
                raise ManifestInvalid(f"{where}: label `{label}` uses the reserved prefix")
        for port in spec.ports:
            if not 0 < port.container_port < 65536 or port.host_port >= 65536:
                raise ManifestInvalid(f"{where}: port {port.container_port}:{port.host_port}")
            if port.protocol not in ("", "tcp", "udp"):
                raise ManifestInvalid(f"{where}: protocol must be tcp or udp")
            if not port.host_port:
                continue
            bound = (port.protocol or "tcp", port.host_port)
            if bound in host_ports:
                raise ManifestInvalid(
                    f"{where}: host port {port.host_port} is taken by `{host_ports[bound]}`"
                )
            host_ports[bound] = spec.name
        for volume in spec.volumes:
            if not volume.source or not volume.target.startswith("/"):
                raise ManifestInvalid(f"{where}: volume needs a source and an absolute target")
        _validate_healthcheck(where, spec.healthcheck)


def _validate_healthcheck(where: str, check: pb.HealthCheck) -> None:
    kinds = [
        k
        for k, v in (("http_url", check.http_url), ("tcp_port", check.tcp_port), ("cmd", check.cmd))
        if v
    ]
    if len(kinds) > 1:
        raise ManifestInvalid(
            f"{where}: healthcheck takes one of http_url, tcp_port or cmd, "
            f"not {' and '.join(kinds)}"
        )
    if check.http_url and not check.http_url.startswith(("http://", "https://")):
        raise ManifestInvalid(f"{where}: healthcheck.http_url must be an http:// or https:// URL")
    if check.tcp_port >= 65536:
        raise ManifestInvalid(f"{where}: healthcheck.tcp_port {check.tcp_port} is not a port")
