"""The JSON Schema shipped with kombify and the translation of its errors into Problems."""

from __future__ import annotations

import difflib
import itertools
import json
from collections.abc import Iterable, Iterator
from functools import lru_cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from kombify.specs.problem import Problem
from kombify.specs.source import Source, join

SCHEMA_FILE = "kombination.schema.json"
# Error text stays bounded whatever the input: a value is shown up to this many characters,
# and at most MAX_ERRORS schema errors are read (an alias-expanded list can hold thousands).
MAX_SHOWN = 60
MAX_MESSAGE = 300
MAX_ERRORS = 100


@lru_cache(maxsize=1)
def schema_text() -> str:
    """The schema as shipped (JSON text), for ``kombify schema`` and editors."""
    return resources.files("kombify.specs").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def kombination_schema() -> dict[str, Any]:
    """The kombination JSON Schema (draft 2020-12) as a dict."""
    loaded: dict[str, Any] = json.loads(schema_text())
    return loaded


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    return Draft202012Validator(kombination_schema())


def suggest(word: str, candidates: Iterable[str]) -> str:
    """A ``" (did you mean "x"?)"`` suffix, or ``""`` when nothing is close."""
    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def schema_problems(
    source: Source, *, validator: Draft202012Validator | None = None
) -> list[Problem]:
    """Every schema violation in ``source.data``, one Problem per field.

    Args:
        source: The parsed document.
        validator: The schema to check against; default the kombination's. KombiSim templates
            pass theirs, so both files get the same messages (``x-hint`` says what is expected).

    Returns:
        The problems (at most :data:`MAX_ERRORS`, then one saying more are not shown), each bounded.
    """
    problems: list[Problem] = []
    suggested: set[str] = set()  # paths a "did you mean" already points at
    errors = (validator or _validator()).iter_errors(source.data)
    for error in itertools.islice(errors, MAX_ERRORS + 1):
        problems.extend(_translate(error, source, suggested))
    if len(problems) > MAX_ERRORS:
        shown = f"more problems not shown (the first {MAX_ERRORS} are)"
        problems = [*problems[:MAX_ERRORS], Problem("", None, shown)]
    # "unknown field nodez (did you mean nodes?)" already says what "nodes is missing" would.
    return [p for p in problems if not (p.path in suggested and p.message.startswith("missing"))]


def _path_of(error: ValidationError) -> str:
    path = ""
    for part in error.absolute_path:
        path = join(path, part if isinstance(part, int) else str(part))
    return path


def _translate(error: ValidationError, source: Source, suggested: set[str]) -> Iterator[Problem]:
    path = _path_of(error)
    schema = error.schema if isinstance(error.schema, dict) else {}
    instance = error.instance
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        known = set(schema.get("properties", {}))
        for key in instance:
            if key in known:
                continue
            hint = suggest(str(key), known)
            if hint:
                suggested.add(join(path, hint.split('"')[1]))
            child = join(path, str(key))
            unknown = _bounded(str(key), MAX_SHOWN)
            yield Problem(child, source.line_of(child), f'unknown field "{unknown}"{hint}')
        return
    if error.validator == "required" and isinstance(instance, dict):
        for name in _as_list(error.validator_value):
            if name not in instance:
                child = join(path, name)
                yield Problem(child, source.line_of(child), f'missing required field "{name}"')
        return
    if "propertyNames" in error.schema_path and isinstance(instance, str):
        # jsonschema reports a bad key at the mapping's path; point at the key itself.
        child = join(path, instance)
        message = f"name {_shown(instance)} must be {_hint(schema)}"
        yield Problem(child, source.line_of(child), message)
        return
    yield Problem(path, source.line_of(path), _message(error, schema))


def _as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _hint(schema: dict[str, Any]) -> str:
    hint = schema.get("x-hint")
    return str(hint) if hint else "valid"


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shown(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(_bounded(value, MAX_SHOWN))
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return _bounded(str(value), MAX_SHOWN)


def _message(error: ValidationError, schema: dict[str, Any]) -> str:
    return _bounded(_words(error, schema), MAX_MESSAGE)


def _words(error: ValidationError, schema: dict[str, Any]) -> str:
    kind = error.validator
    value: Any = error.validator_value
    got = _shown(error.instance)
    if kind == "const":
        return f"must be {json.dumps(value)}, got {got}"
    if kind == "enum":
        options = ", ".join(str(v) for v in value)
        hint = (
            suggest(error.instance, [str(v) for v in value])
            if isinstance(error.instance, str)
            else ""
        )
        return f"must be one of {options}; got {got}{hint}"
    if kind == "pattern" and "x-known" in schema and isinstance(error.instance, str):
        name = error.instance.split("@", 1)[0]
        hint = suggest(name, schema["x-known"])
        return f'unknown stackkit "{name}"{hint}; expected {_hint(schema)}'
    if kind in ("type", "pattern", "maxLength", "minLength", "oneOf", "anyOf", "not"):
        if "x-hint" in schema:
            return f"expected {_hint(schema)}, got {got}"
        if kind == "type":
            return f"expected {_type_words(value)}, got {got}"
        return f"{error.message}"
    if kind == "minItems":
        return f"needs at least {value} item{'s' if value != 1 else ''}"
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if "x-hint" in schema:
            return f"expected {_hint(schema)}, got {got}"
        words = {
            "minimum": "at least",
            "maximum": "at most",
            "exclusiveMinimum": "more than",
            "exclusiveMaximum": "less than",
        }[kind]
        return f"must be {words} {value}, got {got}"
    return str(error.message).splitlines()[0]


def _type_words(value: object) -> str:
    names = {
        "object": "a mapping",
        "array": "a list",
        "string": "a string",
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
        "null": "nothing",
    }
    kinds = value if isinstance(value, list) else [value]
    return " or ".join(names.get(str(k), str(k)) for k in kinds)
