"""The agent's memory on disk: the manifests (in effect, previous) and rollouts under way."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

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


def _write_atomically(path: Path, text: str) -> None:
    """Replaces ``path`` with ``text``: a crash leaves the old file or the new, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class Parked:
    """One service's replacement in progress, as written before anything was stopped.

    Attributes:
        service: The service being replaced.
        parked: Container id -> the name it had (and gets back on a rollback).
        kept: Ids of the service's containers that stay as they are either way.
        committed: The new containers passed their health check; only the removal of the
            parked ones may be left to do.
    """

    service: str
    parked: dict[str, str]
    kept: tuple[str, ...] = ()
    committed: bool = False


class RolloutJournal:
    """What rollouts under way parked, in ``rollout.json`` of the state directory.

    Written before the old containers are stopped and cleared once the service's outcome is
    settled, so an agent that died in between (killed, node stopped or rebooted) knows at its
    next start what to put back: the replacement is undone and the parked containers run again.
    """

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.path = state_dir / "rollout.json"

    def entries(self) -> list[Parked]:
        """Replacements not settled yet, by service name."""
        if not self.path.exists():
            return []
        raw: dict[str, Any] = json.loads(self.path.read_text() or "{}")
        return [
            Parked(
                service=name,
                parked=dict(entry.get("parked", {})),
                kept=tuple(entry.get("kept", ())),
                committed=bool(entry.get("committed", False)),
            )
            for name, entry in sorted(raw.items())
        ]

    def _save(self, entries: list[Parked]) -> None:
        if not entries:
            self.path.unlink(missing_ok=True)
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        data = {
            e.service: {"parked": e.parked, "kept": list(e.kept), "committed": e.committed}
            for e in entries
        }
        _write_atomically(self.path, json.dumps(data, indent=2, sort_keys=True))

    def begin(self, entry: Parked) -> None:
        """Records a replacement before its old containers are touched."""
        self._save([e for e in self.entries() if e.service != entry.service] + [entry])

    def commit(self, service: str) -> None:
        """The new containers are healthy: from now on the parked ones only need removing."""
        entries = self.entries()
        self._save([replace(e, committed=True) if e.service == service else e for e in entries])

    def end(self, service: str) -> None:
        """The service's outcome is settled; nothing is left to undo."""
        self._save([e for e in self.entries() if e.service != service])


class Holds:
    """Services their owner stopped (``StopService``), in ``held.json`` of the state directory.

    A held service is stopped on purpose: the agent reports no problem for it and refuses to
    repair it, so no heal pass starts it again behind the owner's back. ``StartService``,
    ``RestartService`` and the next ``ApplyServices`` clear the hold. On disk so that it
    survives an agent restart and a node reboot.
    """

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.path = state_dir / "held.json"

    def services(self) -> set[str]:
        """The held services' names."""
        if not self.path.exists():
            return set()
        return set(json.loads(self.path.read_text() or "[]"))

    def _save(self, names: set[str]) -> None:
        if not names:
            self.path.unlink(missing_ok=True)
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.path, json.dumps(sorted(names)))

    def hold(self, service: str) -> None:
        """Records that the owner stopped ``service``."""
        self._save(self.services() | {service})

    def release(self, service: str) -> None:
        """Clears the hold of ``service`` (nothing happens if it has none)."""
        held = self.services()
        if service in held:
            self._save(held - {service})

    def clear(self) -> None:
        """Clears every hold (a new manifest is applied)."""
        self._save(set())
