"""Per-simulation SSH key pairs under ``$KOMBIFY_HOME/sims/<name>/``."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kombify.locks import directory_lock
from kombify.names import check_simulation_name, contained
from kombify.settings import get_settings


@dataclass(frozen=True)
class SimKeys:
    """A simulation's key files.

    Attributes:
        private_key: Path of the OpenSSH private key (mode 0600).
        public_key: The OpenSSH public key line installed on every node.
        known_hosts: Per-simulation known_hosts for the ``ssh`` command line.
    """

    private_key: Path
    public_key: str
    known_hosts: Path


def sim_dir(name: str) -> Path:
    """The directory holding a simulation's key files.

    Raises:
        InvalidName: ``name`` is not a simulation name.
    """
    return contained(get_settings().home / "sims", check_simulation_name(name))


def ensure_keys(name: str) -> SimKeys:
    """The simulation's key pair, generated (ed25519) on first use and then reused."""
    directory = sim_dir(name)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    # Two workers (or a worker and `kombify sim create`) may make the same simulation at
    # once: one generates the pair, the other uses it (else nodes would hold one public key
    # while the file holds the other's private key).
    with directory_lock(directory):
        return _ensure_keys(name, directory)


def _ensure_keys(name: str, directory: Path) -> SimKeys:
    private_path = directory / "id_ed25519"
    public_path = directory / "id_ed25519.pub"
    known_hosts = directory / "known_hosts"
    if not private_path.exists() or not public_path.exists():
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        _write_private(private_path, private)
        public_path.write_bytes(public + f" kombisim-{name}\n".encode())
        public_path.chmod(0o600)
    if not known_hosts.exists():
        _write_private(known_hosts, b"")
    return SimKeys(
        private_key=private_path,
        public_key=public_path.read_text().strip(),
        known_hosts=known_hosts,
    )


def _write_private(path: Path, data: bytes) -> None:
    # Create with 0600 from the start: a key must never exist world-readable, even briefly.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    path.chmod(0o600)


def remove_keys(name: str) -> None:
    """Delete the simulation's key directory (idempotent)."""
    shutil.rmtree(sim_dir(name), ignore_errors=True)
