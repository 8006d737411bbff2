"""kombination + StackKit -> Plan (files), and writing a plan into a work directory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kombify.errors import SpecError
from kombify.specs.models import Kombination
from kombify.stackkits.resolver import ResolvedStack, resolve
from kombify.unifier.canonical import digest, dumps
from kombify.unifier.config import bootstrap_file, build, manifest_file
from kombify.unifier.headscale import headscale_files
from kombify.unifier.manifest import node_manifest
from kombify.unifier.routes import ROUTES_FILE, routes_document
from kombify.unifier.swarm import SWARM_MANIFEST_FILE, is_swarm, swarm_manifest

SECRETS_FILE = "secrets.auto.tfvars.json"
CONFIG_NAMES = ("main", "variables", "outputs")
Format = Literal["json", "hcl"]


@dataclass(frozen=True)
class Plan:
    """What the unifier produced for one stack.

    Attributes:
        stack: The stack's name (``metadata.name``).
        files: Relative path -> bytes: ``main.tf.json``, ``variables.tf.json``,
            ``outputs.tf.json``, ``bootstrap/<node>.sh``, ``manifests/<node>.json``,
            ``routes.json`` (kombify.unifier.routes), ``headscale/*`` with a Headscale VPN
            (kombify.unifier.headscale).
            Byte-identical for the same input.
        manifests: Node name -> manifest data (the same content as ``manifests/<node>.json``).
        config: ``main``/``variables``/``outputs`` -> the JSON documents (for the HCL writer).
        sensitive: Names of the sensitive variables the configuration declares.
        secret_files: Relative path -> bytes of files holding secrets (written mode 0600);
            only present when ``unify`` was given ``secrets_ref``.
    """

    stack: str
    files: dict[str, bytes]
    manifests: dict[str, dict[str, Any]]
    config: dict[str, dict[str, Any]]
    sensitive: tuple[str, ...]
    secret_files: dict[str, bytes] = field(default_factory=dict)
    # Swarm kits: every service, run by the swarm (``manifests/_swarm.json``); None otherwise.
    swarm: dict[str, Any] | None = None

    @property
    def fingerprint(self) -> str:
        """A hash of every (non-secret) file: equal plans have equal fingerprints."""
        return digest({path: content.decode() for path, content in sorted(self.files.items())})


def unify(
    k: Kombination,
    *,
    secrets_ref: Mapping[str, str] | None = None,
    resolved: ResolvedStack | None = None,
) -> Plan:
    """Turn a validated kombination into a plan.

    Args:
        k: The kombination (from :func:`kombify.specs.load_kombination`).
        secrets_ref: Values for variables (``ssh_private_key``, ``hcloud_token``,
            ``ssh_public_key``…); they go to a separate 0600 tfvars file, never into the
            configuration.
        resolved: An already resolved stack for ``k`` (saves resolving twice).

    Raises:
        SpecError: ``secrets_ref`` names a variable the configuration does not declare.
    """
    stack = resolved or resolve(k)
    manifests = {n.node.name: node_manifest(stack, n) for n in stack.nodes}
    manifest_bytes = {name: dumps(m) for name, m in manifests.items()}
    config = build(stack)
    files = {f"{name}.tf.json": dumps(config[name]) for name in CONFIG_NAMES}
    for rnode in stack.nodes:
        files[bootstrap_file(rnode.node.name)] = rnode.bootstrap.encode()
        files[manifest_file(rnode.node.name)] = manifest_bytes[rnode.node.name]
    swarm = swarm_manifest(stack) if is_swarm(stack) else None
    if swarm is not None:
        files[SWARM_MANIFEST_FILE] = dumps(swarm)
    files[ROUTES_FILE] = dumps(routes_document(stack))
    files.update(headscale_files(stack))
    variables = config["variables"]["variable"]
    sensitive = tuple(sorted(n for n, v in variables.items() if v.get("sensitive")))
    secret_files: dict[str, bytes] = {}
    if secrets_ref:
        unknown = sorted(set(secrets_ref) - set(variables))
        if unknown:
            raise SpecError(f"secret `{unknown[0]}` is not a variable of this stack")
        secret_files[SECRETS_FILE] = dumps(dict(secrets_ref))
    return Plan(k.metadata.name, files, manifests, config, sensitive, secret_files, swarm)


def write_plan(plan: Plan, workdir: Path, *, fmt: Format = "json") -> list[Path]:
    """Write ``plan`` into ``workdir``; return the paths written, sorted.

    Generated files of the other format and bootstrap scripts or manifests of nodes no longer
    in the plan are removed: OpenTofu loads every ``*.tf`` and ``*.tf.json`` in a directory, so
    a stale ``main.tf`` next to ``main.tf.json`` would declare everything twice. Secret files
    are created with mode 0600 before any byte is written.
    """
    from kombify.unifier.hcl import to_hcl  # here, not at the top: hcl is only for --format hcl

    workdir.mkdir(parents=True, exist_ok=True)
    files = dict(plan.files)
    if fmt == "hcl":
        for name in CONFIG_NAMES:
            del files[f"{name}.tf.json"]
            files[f"{name}.tf"] = to_hcl(plan.config[name]).encode()
    stale = [workdir / f"{n}.tf{'' if fmt == 'json' else '.json'}" for n in CONFIG_NAMES]
    for folder in ("bootstrap", "manifests", "headscale"):
        if (workdir / folder).is_dir():
            stale += [p for p in (workdir / folder).iterdir() if f"{folder}/{p.name}" not in files]
    for path in stale:
        path.unlink(missing_ok=True)
    written = []
    for rel, content in files.items():
        target = workdir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_owner_only(target, content)  # manifests carry service env values
        written.append(target)
    for rel, content in plan.secret_files.items():
        target = workdir / rel
        _write_owner_only(target, content)
        written.append(target)
    return sorted(written)


def _write_owner_only(target: Path, content: bytes) -> None:
    # Mode 0600 before any byte is written.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)  # an existing file keeps its old mode otherwise
        handle.write(content)
