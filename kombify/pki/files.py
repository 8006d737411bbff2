"""Writing key and certificate files atomically with the right permissions."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file is created with the final mode from the start, so a private key is
    # never readable by others, not even for the moment before a chmod.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_private(path: Path, data: bytes) -> None:
    """Writes secret material (a private key) readable by the owner only (mode 0600).

    Args:
        path: Destination; its directory is created (mode 0700) when missing.
        data: The PEM bytes.
    """
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    _write_atomic(path, data, 0o600)


def write_public(path: Path, data: bytes) -> None:
    """Writes a certificate (mode 0644).

    Args:
        path: Destination; its directory is created when missing.
        data: The PEM bytes.
    """
    _write_atomic(path, data, 0o644)
