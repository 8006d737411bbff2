"""PutFile: atomic writes of files shipped by the control plane, confined to a root."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

DEFAULT_MODE = 0o644


class FileRefused(ValueError):
    """The path is not one the agent may write."""


class AtomicFile:
    """A file written under a temporary name and renamed into place on :meth:`commit`.

    Readers of ``path`` see the old content or the complete new content, never a part.

    Args:
        root: The directory tree the agent may write into.
        path: Absolute destination path; must lie inside ``root``.
        mode: Permission bits (0 means 0o644); set before any byte is written.

    Raises:
        FileRefused: ``path`` is relative or leaves ``root``.
    """

    def __init__(self, root: Path, path: str, mode: int) -> None:
        target = Path(path)
        if not target.is_absolute() or target.name in ("", ".", ".."):
            raise FileRefused(f"`{path}` is not an absolute file path")
        root = root.resolve()
        # Resolving the parent follows symlinks and "..", so neither can lead outside root.
        parent = target.parent.resolve()
        if not parent.is_relative_to(root):
            raise FileRefused(f"`{path}` is outside `{root}`, the directory files may go to")
        parent.mkdir(parents=True, exist_ok=True)
        self.path = parent / target.name
        self._digest = hashlib.sha256()
        self.size = 0
        fd, self._tmp = tempfile.mkstemp(dir=parent, prefix=f".{target.name}.")
        os.fchmod(fd, mode or DEFAULT_MODE)
        self._handle = os.fdopen(fd, "wb")

    @property
    def sha256(self) -> str:
        """Hex digest of the bytes written so far."""
        return self._digest.hexdigest()

    def write(self, data: bytes) -> None:
        """Appends ``data``."""
        self._handle.write(data)
        self._digest.update(data)
        self.size += len(data)

    def commit(self) -> None:
        """Flushes to disk and renames the file into place."""
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Discards what was written."""
        self._handle.close()
        Path(self._tmp).unlink(missing_ok=True)
