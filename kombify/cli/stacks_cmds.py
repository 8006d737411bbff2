"""``kombify stacks``: the stacks the API keeps (create from a file, list, show, delete)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.table import Table

from kombify.cli.api_client import ApiClient, api_path
from kombify.cli.output import console, fail, print_json
from kombify.cli.params import StackArg
from kombify.errors import KombifyError, PaymentRequiredError, SpecError
from kombify.settings import get_settings

stacks_app = typer.Typer(help="Stacks: homelabs kombify knows, each from a kombination file.")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _client() -> ApiClient:
    return ApiClient(get_settings())


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        fail(f"cannot read `{path}`: {exc.strerror}")


def _report_spec_error(exc: KombifyError, filename: str) -> None:
    """Each problem of a file the API refused as ``FILE:LINE: PATH: MESSAGE``."""
    for e in exc.errors:
        line = f"{e.get('line')}:" if e.get("line") else ""
        console.print(f"{filename}:{line} {e.get('path')}: {e.get('message')}", markup=False)


def report_plan_limit(exc: PaymentRequiredError, filename: str) -> NoReturn:
    """A plan's refusal: at its place in the file when it has one, and the plan that allows it."""
    if exc.errors:
        _report_spec_error(exc, filename)
        fail(f"`{filename}` needs the {exc.plan.capitalize()} plan: see `kombify plans`")
    fail(exc.message)


@stacks_app.command("create")
def create(
    file: Annotated[Path, typer.Argument(help="The kombination.yaml to store.")],
    json_output: JsonOpt = False,
) -> None:
    """Create a stack from a kombination file (validated first; nothing stored if invalid)."""
    try:
        stack = _client().request(
            "POST", "/v1/stacks", json={"source": _read(file), "filename": str(file)}
        )
    except SpecError as exc:
        _report_spec_error(exc, str(file))
        fail(f"`{file}` is not valid: {len(exc.errors) or 1} problem(s)")
    except PaymentRequiredError as exc:
        report_plan_limit(exc, str(file))
    if json_output:
        print_json(stack)
    else:
        console.print(f"stack `{stack['name']}` created ({stack['stackkit']}, revision 1)")


@stacks_app.command("list")
def list_(json_output: JsonOpt = False) -> None:
    """List the stacks."""
    page: dict[str, Any] = _client().request("GET", "/v1/stacks")
    if json_output:
        print_json(page)
        return
    if not page["data"]:
        console.print("no stacks yet: `kombify stacks create kombination.yaml`")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("name", "stackkit", "revision", "updated"):
        table.add_column(column)
    for s in page["data"]:
        table.add_row(s["name"], s["stackkit"], str(s["current_revision"]), s["updated_at"][:19])
    console.print(table)


@stacks_app.command("show")
def show(name: StackArg, json_output: JsonOpt = False) -> None:
    """Show a stack and its current kombination source."""
    stack = _client().request("GET", api_path("v1", "stacks", name))
    if json_output:
        print_json(stack)
        return
    console.print(f"{stack['name']}: {stack['stackkit']}, revision {stack['current_revision']}")
    console.print(stack["source"], markup=False)


@stacks_app.command("delete")
def delete(name: StackArg) -> None:
    """Forget a stack; refused while it runs or is deployed (`kombify destroy` it first)."""
    _client().request("DELETE", api_path("v1", "stacks", name))
    console.print(f"stack `{name}` deleted")


def register(app: typer.Typer) -> None:
    """Add the ``stacks`` group to the main app."""
    app.add_typer(stacks_app, name="stacks")
