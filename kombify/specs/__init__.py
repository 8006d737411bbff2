"""Kombination files: JSON Schema, validation with line numbers, and typed models.

Use :func:`validate_text` to list problems (it never raises) and :func:`load_kombination` to
get a :class:`Kombination` with the StackKit's defaults filled in.
"""

from __future__ import annotations

from kombify.specs.models import Kombination, Node, Service, Spec
from kombify.specs.problem import KombinationError, Problem
from kombify.specs.schema import kombination_schema, schema_text
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
