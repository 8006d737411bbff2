"""``kombify orgs``, ``members``, ``invite``, ``invitations accept`` and ``activity``.

Commands about one organisation take ``--org SLUG``; without it they act in the one
``kombify --org`` or ``KOMBIFY_ORG`` names, else in your home organisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from kombify.cli.api_client import ApiClient, api_path, selected_org
from kombify.cli.output import console, print_json
from kombify.cli.params import OrgOpt, record_id_callback
from kombify.settings import get_settings

orgs_app = typer.Typer(help="Organisations you belong to.")
members_app = typer.Typer(help="An organisation's members.")
invitations_app = typer.Typer(help="Invitations to organisations.")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


class InviteRole(StrEnum):
    """Roles an invitation can give (owners are made among members)."""

    admin = "admin"
    member = "member"
    viewer = "viewer"


def _client() -> ApiClient:
    return ApiClient(get_settings())


def _org(client: ApiClient, org: str | None) -> str:
    """``--org``, else the selected organisation, else the one the API says you act in."""
    chosen = org or selected_org(get_settings())
    if chosen:
        return chosen
    me: dict[str, Any] = client.request("GET", "/v1/me")
    return str(me["organisation"]["slug"])


def _table(columns: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    return table


@orgs_app.command("list")
def orgs_list(json_output: JsonOpt = False) -> None:
    """The organisations you belong to, with your role in each."""
    page: dict[str, Any] = _client().request("GET", "/v1/orgs")
    if json_output:
        print_json(page)
        return
    rows = [(o["slug"], o["name"], o["role"]) for o in page["data"]]
    console.print(_table(("slug", "name", "role"), rows))


@orgs_app.command("create")
def orgs_create(
    slug: Annotated[str, typer.Argument(help="Its name in paths and on the command line.")],
    name: Annotated[str, typer.Option("--name", help="Display name.")] = "",
    json_output: JsonOpt = False,
) -> None:
    """Create an organisation; you are its owner."""
    made: dict[str, Any] = _client().request("POST", "/v1/orgs", json={"slug": slug, "name": name})
    if json_output:
        print_json(made)
        return
    console.print(
        f"organisation `{made['slug']}` created; you are its owner "
        f"(act in it with `kombify --org {made['slug']} …` or KOMBIFY_ORG={made['slug']})",
        markup=False,
    )


@members_app.command("list")
def members_list(org: OrgOpt = None, json_output: JsonOpt = False) -> None:
    """The organisation's members and their roles."""
    client = _client()
    page: dict[str, Any] = client.request(
        "GET", api_path("v1", "orgs", _org(client, org), "members")
    )
    if json_output:
        print_json(page)
        return
    rows = [(m["user_id"], m["email"], m["name"] or "-", m["role"]) for m in page["data"]]
    console.print(_table(("user id", "email", "name", "role"), rows))


def invite(
    email: Annotated[str, typer.Argument(help="Who to invite.")],
    role: Annotated[InviteRole, typer.Option("--role", help="The role they get.")],
    org: OrgOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Invite someone by email (admins); the mail holds the token, printed here once too."""
    client = _client()
    slug = _org(client, org)
    made: dict[str, Any] = client.request(
        "POST",
        api_path("v1", "orgs", slug, "invitations"),
        json={"email": email, "role": role.value},
    )
    if json_output:
        print_json(made)
        return
    console.print(
        f"invited {made['email']} to `{slug}` as {made['role']} (works once, until "
        f"{made['expires_at'][:10]}); they accept with:",
        markup=False,
    )
    console.print(f"kombify invitations accept {made['token']}", markup=False, soft_wrap=True)


@invitations_app.command("accept")
def invitations_accept(
    token: Annotated[str, typer.Argument(help="The token from the invitation mail (kfi_…).")],
) -> None:
    """Join the organisation an invitation to your email address is for."""
    joined: dict[str, Any] = _client().request(
        "POST", "/v1/invitations/accept", json={"token": token}
    )
    console.print(f"joined `{joined['slug']}` as {joined['role']}", markup=False)


def activity(
    org: OrgOpt = None,
    user: Annotated[
        str | None,
        typer.Option(
            "--user", help="Only this user's (id).", callback=record_id_callback("user id")
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="At most this many.")] = 50,
    json_output: JsonOpt = False,
) -> None:
    """The organisation's activity log, newest first (admins and owners)."""
    client = _client()
    params: dict[str, Any] = {"limit": limit}
    if user is not None:
        params["user"] = user
    page: dict[str, Any] = client.request(
        "GET", api_path("v1", "orgs", _org(client, org), "activity"), params=params
    )
    if json_output:
        print_json(page)
        return
    rows = [
        (
            e["at"][:19],
            e["actor"] or "-",
            e["via"] or "-",
            e["action"],
            f"{e['object_type']} {e['object_id']}".strip() or "-",
            e["outcome"],
            e["address"] or "-",
        )
        for e in page["data"]
    ]
    columns = ("at", "actor", "via", "action", "object", "outcome", "address")
    console.print(_table(columns, rows))


def register(app: typer.Typer) -> None:
    """Add ``orgs``, ``members``, ``invite``, ``invitations`` and ``activity``."""
    app.add_typer(orgs_app, name="orgs")
    app.add_typer(members_app, name="members")
    app.command("invite")(invite)
    app.add_typer(invitations_app, name="invitations")
    app.command("activity")(activity)
