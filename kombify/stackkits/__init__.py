"""The StackKit library as data (core, platforms, kits, variants, catalog) and its resolver.

Layers merge ``core < platform < kit < variant < user``; see docs/stackkits.md.
"""

from __future__ import annotations

from kombify.stackkits.library import KIT_NAMES, Kit, Library, load_library
from kombify.stackkits.merge import merge
from kombify.stackkits.resolver import ResolvedNode, ResolvedService, ResolvedStack, resolve

__all__ = [
    "KIT_NAMES",
    "Kit",
    "Library",
    "ResolvedNode",
    "ResolvedService",
    "ResolvedStack",
    "load_library",
    "merge",
    "resolve",
]
