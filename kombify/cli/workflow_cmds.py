"""``kombify workflow …``: validate an owner's workflow file, run it, follow and list runs.

``validate`` works offline with the exit codes and JSON shape of ``kombify validate``
(0 valid, 1 problems, 2 unreadable file; ``--json`` prints ``[{"path", "line", "message"}]``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from kombify.cli.output import fail
from kombify.cli.validate_cmds import report
from kombify.errors import SpecError
from kombify.specs.source import read_document
from kombify.userwf.load import schema_text, workflow_problems

workflow_app = typer.Typer(help="Your own YAML workflows (kind: Workflow): validate and run them.")

FileArg = Annotated[Path, typer.Argument(help="The workflow file (kind: Workflow).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def read_workflow(path: Path) -> str:
    """The file's text; a missing, unreadable, oversized or binary file exits 2."""
    try:
        return read_document(path, what="a workflow")
    except FileNotFoundError:
        fail(f"`{path}` does not exist", code=2)
    except SpecError as exc:
        fail(exc.message, code=2)


@workflow_app.command("validate")
def validate(file: FileArg, as_json: JsonOpt = False) -> None:
    """Check a workflow file: schema, one action per step, and every reference."""
    report(file, workflow_problems(read_workflow(file), str(file)), as_json=as_json)


@workflow_app.command("schema")
def schema() -> None:
    """Print the workflow file JSON Schema (draft 2020-12), e.g. for yaml-language-server."""
    sys.stdout.write(schema_text())


def register(app: typer.Typer) -> None:
    """Add ``workflow`` to the main ``kombify`` app."""
    app.add_typer(workflow_app, name="workflow")
