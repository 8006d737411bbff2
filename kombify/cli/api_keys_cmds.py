"""``kombify api-keys``: keys for scripts, bound to one organisation and scoped.

``create`` prints the key once: on stdout alone (so ``KEY=$(kombify api-keys create …)``
works), with the warning to store it on stderr; ``--json`` puts it in the JSON document.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from kombify.cli.api_client import ApiClient, api_path
from kombify.cli.output import console, err_console, print_json
from kombify.cli.params import record_id_callback
from kombify.cli.sign_in import reauthenticate
from kombify.settings import get_settings

api_keys_app = typer.Typer(help="API keys for scripts: `KOMBIFY_API_KEY=kfk_… kombify …`.")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


class Scope(StrEnum):
    """What a key may do: read (as a viewer), deploy (as a member), admin."""

    read = "read"
    deploy = "deploy"
    admin = "admin"


def _client() -> ApiClient:
    return ApiClient(get_settings())


def _day(value: str | None) -> str:
    return value[:10] if value else "-"


@api_keys_app.command("list")
def list_(json_output: JsonOpt = False) -> None:
    """The organisation's keys (admins) or your own (everyone else); never their secrets."""
    page: dict[str, Any] = _client().request("GET", "/v1/api-keys")
    if json_output:
        print_json(page)
        return
    if not page["data"]:
        console.print("no API keys: `kombify api-keys create NAME --scope read`", markup=False)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("id", "name", "scope", "prefix", "created", "expires", "last used", "state"):
        table.add_column(column)
    for key in page["data"]:
        table.add_row(
            key["id"],
            key["name"],
            key["scope"],
            key["prefix"],
            _day(key["created_at"]),
            _day(key["expires_at"]),
            (key["last_used_at"] or "-")[:19],
            "revoked" if key["revoked"] else "active",
        )
    console.print(table)


@api_keys_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="What the key is for (shown in lists).")],
    scope: Annotated[Scope, typer.Option("--scope", help="What the key may do.")],
    expires_in_days: Annotated[
        int | None,
        typer.Option("--expires-in-days", min=1, max=3650, help="Days until it stops working."),
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="For --scope admin: read the password you confirm with from stdin.",
        ),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Create a key in the current organisation; it is printed once: store it now."""
    client = _client()
    if scope is Scope.admin:
        reauthenticate(client, password_stdin=password_stdin)
    body: dict[str, Any] = {"name": name, "scope": scope.value}
    if expires_in_days is not None:
        body["expires_in_days"] = expires_in_days
    made: dict[str, Any] = client.request("POST", "/v1/api-keys", json=body)
    if json_output:
        print_json(made)
        return
    expires = f"expires {_day(made['expires_at'])}" if made["expires_at"] else "no expiry"
    err_console.print(
        f"API key `{made['name']}` created (id {made['id']}, scope {made['scope']}, {expires}). "
        "Store it now: it is not shown again.",
        markup=False,
        soft_wrap=True,
    )
    console.print(made["key"], markup=False, soft_wrap=True)


@api_keys_app.command("revoke")
def revoke(
    key_id: Annotated[
        str,
        typer.Argument(
            metavar="ID",
            help="The key's id (`kombify api-keys list`).",
            callback=record_id_callback("API key id"),
        ),
    ],
) -> None:
    """Revoke a key: refused from its next use."""
    _client().request("DELETE", api_path("v1", "api-keys", key_id))
    console.print(f"API key `{key_id}` revoked", markup=False)


def register(app: typer.Typer) -> None:
    """Add the ``api-keys`` group to the main app."""
    app.add_typer(api_keys_app, name="api-keys")
