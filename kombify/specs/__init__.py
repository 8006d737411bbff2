"""Kombination files: JSON Schema, validation with line numbers, and typed models.

Use :func:`validate_text` to list problems (it never raises) and :func:`load_kombination` to
get a :class:`Kombination` with the StackKit's defaults filled in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kombify.specs.models import Kombination, Node, Service, Spec
from kombify.specs.problem import KombinationError, Problem
from kombify.specs.schema import kombination_schema, schema_text

if TYPE_CHECKING:
    from kombify.specs.validate import load_kombination, validate_text

__all__ = [
    "Kombination",
    "KombinationError",
    "Node",
    "Problem",
    "Service",
    "Spec",
    "kombination_schema",
    "load_kombination",
    "schema_text",
    "validate_text",
]


def __getattr__(name: str) -> Any:
    # Validation checks the StackKit rules, and the StackKit library uses this package's
    # models: loaded on first use, so importing either package first works.
    if name in ("load_kombination", "validate_text"):
        from kombify.specs import validate

        return getattr(validate, name)
    raise AttributeError(f"module 'kombify.specs' has no attribute {name!r}")
