"""`kombify plan` and `kombify plans`: the organisation's plan and usage, the plans sold."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from kombify.cli.api_client import ApiClient, api_path, selected_org
from kombify.cli.output import console, print_json
from kombify.cli.params import OrgOpt
from kombify.settings import get_settings

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _org(client: ApiClient, org: str | None) -> str:
    """``--org``, else the selected organisation, else the one the API says you act in."""
    chosen = org or selected_org(get_settings())
    if chosen:
        return chosen
    me: dict[str, Any] = client.request("GET", "/v1/me")
    return str(me["organisation"]["slug"])


def _of(used: int, limit: int | None) -> str:
    return f"{used} of {limit}" if limit is not None else f"{used} (no limit)"


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _kits(level: str) -> str:
    return "every kit" if level == "premium" else "base-homelab only"


def plan_lines(body: dict[str, Any]) -> list[tuple[str, str]]:
    """The rows ``kombify plan`` prints: each limit with what is used of it."""
    ent = body["entitlements"]
    usage = body["usage"]
    nodes = ent["simulation_nodes"]
    return [
        ("stacks", _of(usage["stacks"], ent["stacks"])),
        ("simulations", _of(usage["simulations"], ent["simulations"])),
        ("kombisim", ent["kombisim"] + (f" (up to {nodes} nodes each)" if nodes else "")),
        ("stackkits", _kits(ent["stackkits"])),
        (
            "members",
            f"{usage['members']}" + ("" if ent["team"] else " (team collaboration: no)"),
        ),
        ("own identity provider", _yes(ent["sso"])),
        ("priority support", _yes(ent["priority_support"])),
    ]


def _when(value: str | None) -> str:
    return str(value)[:19].replace("T", " ") + " UTC" if value else ""


def plan(org: OrgOpt = None, json_output: JsonOpt = False) -> None:
    """Show the organisation's plan, each limit with its usage, and frozen stacks."""
    client = ApiClient(get_settings())
    slug = _org(client, org)
    body: dict[str, Any] = client.request("GET", api_path("v1", "orgs", slug, "entitlements"))
    if json_output:
        print_json(body)
        return
    if not body["billing"]:
        head = f"{slug}: {body['plan']['name']} (billing is off here: every entitlement)"
    else:
        head = f"{slug}: {body['plan']['name']} plan, status {body['status']}"
    console.print(head, markup=False, soft_wrap=True)
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column("limit")
    table.add_column("value", overflow="fold")
    for name, value in plan_lines(body):
        table.add_row(name, value)
    console.print(table)
    if body["frozen_stacks"]:
        console.print(
            "frozen (no new deploys until you upgrade or delete stacks; destroy works): "
            + ", ".join(body["frozen_stacks"]),
            markup=False,
            soft_wrap=True,
        )
    for label, key in (
        ("trial ends", "trial_end"),
        ("period ends", "current_period_end"),
        ("grace until", "grace_until"),
    ):
        if body.get(key):
            console.print(f"{label}: {_when(body[key])}", markup=False, soft_wrap=True)
    if body.get("pending_plan"):
        console.print(f"at period end: {body['pending_plan']}", markup=False, soft_wrap=True)
    if body.get("cancel_at_period_end"):
        console.print("cancelled at period end", markup=False, soft_wrap=True)


def _price(cents: int | None) -> str:
    if cents is None:
        return "custom"
    if cents == 0:
        return "$0"
    return f"${cents // 100}" + (f".{cents % 100:02d}" if cents % 100 else "") + " a month"


def plans(json_output: JsonOpt = False) -> None:
    """List the plans: price and what each allows."""
    body: dict[str, Any] = ApiClient(get_settings()).request("GET", "/v1/plans")
    if json_output:
        print_json(body)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("plan", "price", "stacks", "kombisim", "stackkits", "team", "sso", "support"):
        table.add_column(column, overflow="fold")
    for item in body["data"]:
        ent = item["entitlements"]
        table.add_row(
            item["id"],
            _price(item["monthly_cents"]),
            "unlimited" if ent["stacks"] is None else str(ent["stacks"]),
            ent["kombisim"],
            _kits(ent["stackkits"]),
            _yes(ent["team"]),
            _yes(ent["sso"]),
            "priority" if ent["priority_support"] else "",
        )
    console.print(table)
    if not body["billing"]:
        console.print(
            "billing is off on this installation: every organisation has every entitlement",
            markup=False,
            soft_wrap=True,
        )


def register(app: typer.Typer) -> None:
    """Add ``plan`` and ``plans``."""
    app.command("plan")(plan)
    app.command("plans")(plans)
