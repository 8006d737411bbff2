"""kombify: run a homelab from one file, durably."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Looked up on first use: importlib.metadata costs ~70 ms at import, which every CLI call
    # and every node agent start would otherwise pay without needing the version.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("kombify")
        except PackageNotFoundError:  # a node agent's bundle, or a tree never installed
            return _bundled_version()
    raise AttributeError(f"module 'kombify' has no attribute {name!r}")


def _bundled_version() -> str:
    # The agent bundle carries the control host's version (kombify.agent.bundle).
    import importlib

    try:
        module = importlib.import_module("kombify._bundle_version")
    except ImportError:
        return "0.0.0"
    return str(module.VERSION)
