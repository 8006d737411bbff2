"""Validation entry points: text in, every problem (sorted by line) out."""

from __future__ import annotations

from typing import Any

from kombify.specs.models import Kombination
from kombify.specs.problem import KombinationError, Problem, sort_problems
from kombify.specs.rules import rule_problems
from kombify.specs.schema import schema_problems
from kombify.specs.source import Source, load_source
from kombify.stackkits.library import load_library


def check_source(source: Source) -> list[Problem]:
    """Schema and StackKit problems of an already-parsed document, sorted by line."""
    if source.data is None and source.problems:
        return sort_problems(source.problems)
    problems = list(source.problems)
    if not isinstance(source.data, dict):
        problems.append(
            Problem(
                "", source.line_of(""), "expected a mapping with apiVersion, kind, metadata, spec"
            )
        )
        return sort_problems(problems)
    found = schema_problems(source)
    problems += found
    problems += rule_problems(source, found)
    return sort_problems(problems)


def validate_text(text: str, *, filename: str = "kombination.yaml") -> list[Problem]:
    """Validate a kombination; never raises.

    Args:
        text: The YAML text.
        filename: Only used in messages (kept for symmetry with :func:`load_kombination`).

    Returns:
        Every problem found, sorted by line; empty when the file is valid.
    """
    del filename  # problems carry no file name; Problem.format adds it
    try:
        return check_source(load_source(text))
    except RecursionError:
        return [Problem("", 1, "the document is too deeply nested")]


def load_kombination(text: str, *, filename: str = "kombination.yaml") -> Kombination:
    """Validate and parse a kombination, filling in the StackKit's defaults.

    Raises:
        KombinationError: (a :class:`kombify.errors.SpecError`) with ``problems`` when invalid.
    """
    source = load_source(text)
    problems = check_source(source)
    if problems:
        raise KombinationError(problems, filename=filename)
    assert isinstance(source.data, dict)
    return Kombination.model_validate(with_defaults(source.data))


def with_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Fill in what the StackKit decides: each node's role, the variant and the domain."""
    spec = dict(data["spec"])
    kit = load_library().kit(spec["stackkit"].split("@", 1)[0])
    spec.setdefault("variant", kit.default_variant)
    spec.setdefault("domain", f"{data['metadata']['name']}.home.arpa")
    spec["nodes"] = [{"role": kit.default_role, **node} for node in spec["nodes"]]
    return {**data, "spec": spec}
