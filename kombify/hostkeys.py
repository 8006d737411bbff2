"""SSH host keys as values: parse an OpenSSH public key line, fingerprint it, compare.

A node's host key is pinned on first contact (or stated as ``ssh.hostKey`` in the
kombination); every later connection, asyncssh's and OpenTofu's, verifies against the pin.
This module is pure (no asyncssh, no database) so the spec validator, the API, the CLI and the
activities share one parser and one fingerprint format (OpenSSH's ``SHA256:...``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

# Host key types a node may present; DSA is gone from OpenSSH and refused here too.
ALGORITHMS: tuple[str, ...] = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)
HINT = "an OpenSSH public key line such as `ssh-ed25519 AAAA...` (`ssh-keyscan` prints it)"


def trust_command(stack: str, node: str) -> str:
    """The command that re-trusts a node's changed key, after the user checked it."""
    return f"kombify nodes trust {stack} {node}"


@dataclass(frozen=True)
class HostKey:
    """One SSH host public key: its algorithm and its base64 blob (no comment).

    Attributes:
        algorithm: The key type, e.g. ``ssh-ed25519``.
        data: The base64 of the key blob, exactly as OpenSSH writes it.
    """

    algorithm: str
    data: str

    @classmethod
    def parse(cls, text: str) -> HostKey:
        """A key from ``"<type> <base64> [comment]"``.

        Raises:
            ValueError: Not such a line, an unknown type, or a blob that is not of that type;
                the message says what was expected.
        """
        parts = text.strip().split()
        if len(parts) < 2:
            raise ValueError(f"expected {HINT}")
        algorithm, data = parts[0], parts[1]
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown host key type `{algorithm[:40]}`: expected one of "
                             + ", ".join(ALGORITHMS))
        try:
            blob = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"the key after `{algorithm}` is not valid base64") from exc
        # The blob starts with its own type as an SSH string: a pasted mix-up shows here.
        if len(blob) < 4:
            raise ValueError(f"the `{algorithm}` key is truncated")
        (length,) = struct.unpack(">I", blob[:4])
        if blob[4 : 4 + length] != algorithm.encode() or len(blob) <= 4 + length:
            raise ValueError(f"the key data is not a `{algorithm}` key")
        return cls(algorithm, base64.b64encode(blob).decode())

    @property
    def line(self) -> str:
        """``"<type> <base64>"``: what OpenTofu's ``host_key`` and known_hosts take."""
        return f"{self.algorithm} {self.data}"

    @property
    def fingerprint(self) -> str:
        """OpenSSH's fingerprint, ``SHA256:`` and unpadded base64 (as ``ssh-keygen -l``)."""
        digest = hashlib.sha256(base64.b64decode(self.data)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def fingerprint_of(line: str) -> str:
    """The fingerprint of a public key line (``""`` for an empty one)."""
    return HostKey.parse(line).fingerprint if line else ""
