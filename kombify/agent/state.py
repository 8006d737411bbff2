"""The agent's memory on disk: the manifest in effect and the one before it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from google.protobuf import json_format

from kombify.agent.proto import pb


class ManifestStore:
    """Keeps ``manifest.json`` (in effect) and ``manifest.previous.json`` under a directory.

    JSON rather than binary protobuf so an operator can read what a node is meant to run.
    """

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.current_path = state_dir / "manifest.json"
        self.previous_path = state_dir / "manifest.previous.json"

    def _read(self, path: Path) -> pb.Manifest | None:
        if not path.exists():
            return None
        return json_format.Parse(path.read_text(), pb.Manifest())

    def current(self) -> pb.Manifest | None:
        """The manifest in effect, or None before the first apply."""
        return self._read(self.current_path)

    def previous(self) -> pb.Manifest | None:
        """The manifest in effect before the current one."""
        return self._read(self.previous_path)

    def save(self, manifest: pb.Manifest) -> None:
        """Makes ``manifest`` current and the current one previous (unless they are equal)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        text = json_format.MessageToJson(manifest, preserving_proto_field_name=True, indent=2)
        if self.current_path.exists() and self.current_path.read_text() == text:
            return
        # The new file is complete on disk before anything is renamed, so a crash leaves either
        # the old pair or the new pair, never a half-written manifest.
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".manifest.")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if self.current_path.exists():
            os.replace(self.current_path, self.previous_path)
        os.replace(tmp, self.current_path)
