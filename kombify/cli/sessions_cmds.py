"""``kombify sessions``: your signed-in sessions (browsers, this CLI), listed and ended."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from kombify.cli.api_client import ApiClient, api_path
from kombify.cli.credentials import forget_login
from kombify.cli.output import console, print_json
from kombify.cli.params import record_id_callback
from kombify.settings import get_settings

sessions_app = typer.Typer(help="Your sessions: where you are signed in.")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _listed(client: ApiClient) -> list[dict[str, Any]]:
    page: dict[str, Any] = client.request("GET", "/v1/auth/sessions")
    return list(page["data"])


@sessions_app.command("list")
def list_(json_output: JsonOpt = False) -> None:
    """Your live sessions, newest first; `*` marks the one this CLI uses."""
    client = ApiClient(get_settings())
    rows = _listed(client)
    if json_output:
        print_json({"data": rows, "count": len(rows)})
        return
    table = Table(box=None, pad_edge=False)
    for column in ("", "id", "created", "last seen", "expires", "address", "client"):
        table.add_column(column)
    for s in rows:
        table.add_row(
            "*" if s["current"] else "",
            s["id"],
            s["created_at"][:19],
            s["last_seen_at"][:19],
            s["expires_at"][:19],
            s["address"] or "-",
            s["client"] or "-",
        )
    console.print(table)


@sessions_app.command("revoke")
def revoke(
    session_id: Annotated[
        str,
        typer.Argument(
            metavar="ID",
            help="The session's id (`kombify sessions list`).",
            callback=record_id_callback("session id"),
        ),
    ],
) -> None:
    """End one of your sessions; refused from its next request on."""
    settings = get_settings()
    client = ApiClient(settings)
    current = any(s["id"] == session_id and s["current"] for s in _listed(client))
    client.request("DELETE", api_path("v1", "auth", "sessions", session_id))
    if current:
        forget_login(settings)
        console.print(f"session `{session_id}` ended: it was this CLI's, signed out", markup=False)
    else:
        console.print(f"session `{session_id}` ended", markup=False)


@sessions_app.command("revoke-others")
def revoke_others() -> None:
    """End every session of yours but the one this CLI uses."""
    ended: dict[str, Any] = ApiClient(get_settings()).request("DELETE", "/v1/auth/sessions")
    console.print(f"{ended['revoked']} other session(s) ended", markup=False)


def register(app: typer.Typer) -> None:
    """Add the ``sessions`` group to the main app."""
    app.add_typer(sessions_app, name="sessions")
