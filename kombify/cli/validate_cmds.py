"""``kombify validate`` and ``kombify schema``: check a kombination offline, print the schema.

Problems go to stderr as ``FILE:LINE: path: message`` (compiler style, sorted by line); with
``--json`` stdout gets ``[{"path", "line", "message"}]`` and nothing else. Exit 0 when
valid, 1 when not, 2 when the file cannot be read (a usage error).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from kombify.cli.output import fail
from kombify.errors import SpecError
from kombify.specs import Problem, schema_text, validate_text
from kombify.specs.source import read_document

FileArg = Annotated[Path, typer.Argument(help="The kombination file (kombination.yaml).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print problems as JSON on stdout.")]


def read_spec(path: Path) -> str:
    """The file's text, read with the size bound before any parsing.

    A missing, unreadable, oversized or binary file is a usage error (exit 2).
    """
    try:
        return read_document(path)
    except FileNotFoundError:
        fail(f"`{path}` does not exist", code=2)
    except SpecError as exc:
        fail(exc.message, code=2)


def report(path: Path, problems: list[Problem], *, as_json: bool) -> None:
    """Print the outcome of a validation and exit 1 if there are problems."""
    if as_json:
        sys.stdout.write(json.dumps([p.to_dict() for p in problems], indent=2) + "\n")
    else:
        for problem in problems:
            typer.echo(problem.format(str(path)), err=True)
        if problems:
            count = len(problems)
            typer.echo(f"{path}: {count} problem{'s' if count != 1 else ''}", err=True)
        else:
            typer.echo(f"{path}: valid")
    if problems:
        raise typer.Exit(1)


def validate(file: FileArg, as_json: JsonOpt = False) -> None:
    """Check a kombination file against the schema and its StackKit's rules."""
    report(file, validate_text(read_spec(file), filename=str(file)), as_json=as_json)


def schema() -> None:
    """Print the kombination JSON Schema (draft 2020-12), e.g. for yaml-language-server."""
    sys.stdout.write(schema_text())


def register(app: typer.Typer) -> None:
    """Add ``validate`` and ``schema`` to the main ``kombify`` app."""
    app.command("validate")(validate)
    app.command("schema")(schema)
