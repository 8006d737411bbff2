"""The installation's list of revoked node certificates (``$KOMBIFY_HOME/pki/revoked.json``).

A node agent's certificate outlives the node's use: ``destroy`` removes it from the node, but
a copy (a backup, a disk image, a node handed on to someone else) would still pass the TLS
handshake until it expires, since the control plane trusts every certificate of its CA. The
control plane therefore keeps the serials it revoked and refuses an agent presenting one
(:meth:`kombify.agent.client.AgentClient.verify_peer`); issuing never reuses one.

The file is small JSON, not an X.509 CRL: nothing outside the control plane reads it (the
agents only check the control plane's client certificate), gRPC's Python API cannot take a
CRL, and the list records why and when in words a person can read. Every process sharing the
home reads it afresh at each check, so a revocation by one worker holds for all at once.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from kombify.errors import ConfigError
from kombify.locks import directory_lock
from kombify.pki.files import write_private

REVOKED_FILE = "revoked.json"
_FORMAT = 1


@dataclass(frozen=True)
class Revocation:
    """One revoked certificate.

    Attributes:
        serial: The certificate's serial number.
        identity: Whom it named (the node identity, its subject CN).
        revoked_at: When it was revoked (UTC).
        reason: Why, in words (e.g. "destroy of stack `local/home`, deployment 3f2a…").
        expires_at: When the certificate expires anyway; past then the entry can go.
    """

    serial: int
    identity: str
    revoked_at: dt.datetime
    reason: str
    expires_at: dt.datetime

    def describe(self) -> str:
        """A short sentence for error messages: which serial, when and why."""
        return (
            f"certificate {self.serial:x} was revoked on {self.revoked_at:%Y-%m-%d %H:%M} UTC "
            f"({self.reason})"
        )

    def to_json(self) -> dict[str, str]:
        """The entry as stored (the serial in hex: JSON numbers lose digits past 2**53)."""
        return {
            "serial": f"{self.serial:x}",
            "identity": self.identity,
            "revoked_at": self.revoked_at.isoformat(),
            "reason": self.reason,
            "expires_at": self.expires_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Any) -> Revocation:
        """Parses a stored entry.

        Raises:
            ValueError: A field is missing or malformed.
        """
        if not isinstance(data, dict):
            raise ValueError(f"an entry must be an object, not {type(data).__name__}")
        try:
            return cls(
                serial=int(str(data["serial"]), 16),
                identity=str(data["identity"]),
                revoked_at=_utc(str(data["revoked_at"])),
                reason=str(data["reason"]),
                expires_at=_utc(str(data["expires_at"])),
            )
        except KeyError as exc:
            raise ValueError(f"an entry lacks `{exc.args[0]}`") from exc


def _utc(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"`{text}` has no time zone")
    return value.astimezone(dt.UTC)


class RevocationList:
    """The revoked certificates of one installation, kept in ``directory/revoked.json``.

    Args:
        directory: The CA's directory (``$KOMBIFY_HOME/pki``).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / REVOKED_FILE

    def entries(self) -> list[Revocation]:
        """Every entry, oldest first; none when the file does not exist.

        Raises:
            ConfigError: The file cannot be read or is not a revocation list. A damaged list
                is refused rather than read as empty: that would trust every revoked agent.
        """
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ConfigError(f"cannot read the revocation list `{self.path}`: {exc}") from exc
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("format") != _FORMAT:
                raise ValueError(f'expected an object with "format": {_FORMAT}')
            items = data.get("revoked")
            if not isinstance(items, list):
                raise ValueError('expected "revoked" to be a list')
            return [Revocation.from_json(item) for item in items]
        except ValueError as exc:  # json.JSONDecodeError is one
            raise ConfigError(
                f"`{self.path}` is not a kombify revocation list: {exc}; restore it from a "
                "backup (deleting it would trust every revoked agent again)"
            ) from exc

    def lookup(self, serial: int) -> Revocation | None:
        """The entry revoking ``serial``, if there is one."""
        return next((e for e in self.entries() if e.serial == serial), None)

    def is_revoked(self, serial: int) -> bool:
        """Whether the certificate with ``serial`` is revoked."""
        return self.lookup(serial) is not None

    def revoke(
        self,
        cert: x509.Certificate,
        *,
        identity: str,
        reason: str,
        now: dt.datetime | None = None,
    ) -> tuple[Revocation, bool]:
        """Revokes ``cert``; revoking it again changes nothing.

        Several workers share the home: the read, the change and the write happen under the
        directory's lock, so no process's revocation overwrites another's.

        Args:
            cert: The certificate to revoke.
            identity: The node identity it was issued to (recorded, for people).
            reason: Why it is revoked.
            now: Reference time (tests); defaults to the current UTC time.

        Returns:
            The entry, and whether this call added it (False: it was revoked already, and the
            first entry's time and reason stand).
        """
        now = now or dt.datetime.now(dt.UTC)
        with directory_lock(self.directory):
            entries = self.entries()
            for entry in entries:
                if entry.serial == cert.serial_number:
                    return entry, False
            entry = Revocation(
                serial=cert.serial_number,
                identity=identity,
                revoked_at=now,
                reason=reason,
                expires_at=cert.not_valid_after_utc,
            )
            # An expired certificate fails the handshake on its own: its entry can go.
            kept = [e for e in entries if e.expires_at > now]
            self._write([*kept, entry])
            return entry, True

    def _write(self, entries: list[Revocation]) -> None:
        body = {"format": _FORMAT, "revoked": [e.to_json() for e in entries]}
        # Private like the CA key beside it: the list tells which nodes this home managed.
        write_private(self.path, json.dumps(body, indent=2).encode() + b"\n")
