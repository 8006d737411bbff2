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
        except PackageNotFoundError:  # a source tree that was never installed (node agents)
            return "0.0.0"
    raise AttributeError(f"module 'kombify' has no attribute {name!r}")
