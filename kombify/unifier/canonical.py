"""Byte-stable JSON and names: the same input must always give the same bytes."""

from __future__ import annotations

import hashlib
import json
import re


def dumps(value: object) -> bytes:
    """Canonical JSON: sorted keys, two-space indent, trailing newline, UTF-8."""
    return (json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def digest(value: object) -> str:
    """``sha256:<hex>`` of the canonical compact JSON of ``value``."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def ident(*parts: str) -> str:
    """An OpenTofu identifier from names: ``ident("node", "worker-a")`` -> ``node_worker_a``.

    Node names are DNS labels (no ``_``), so replacing ``-`` by ``_`` never merges two names.
    """
    return "_".join(re.sub(r"[^A-Za-z0-9_]", "_", p) for p in parts)


def literal(text: str) -> str:
    """Escape OpenTofu template sequences so user text is never interpolated."""
    return text.replace("${", "$${").replace("%{", "%%{")
