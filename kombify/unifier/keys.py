"""The stack's managed SSH key, for nodes whose kombination names no ``identityFile``."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def ensure_managed_key(path: Path) -> tuple[str, str]:
    """Return (private key in OpenSSH PEM, public key line), creating them once, mode 0600."""
    public_path = path.with_name(path.name + ".pub")
    if path.exists() and public_path.exists():
        return path.read_text(), public_path.read_text().strip()
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
        + " kombify-managed"
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(private)
    public_path.write_text(public + "\n")
    return private, public
