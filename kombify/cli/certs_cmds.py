"""`kombify certs`: the certificates kombify's node agents and control plane use."""

from __future__ import annotations

from typing import Annotated

import typer

from kombify.cli.api_client import ApiClient
from kombify.cli.output import console, print_json
from kombify.settings import get_settings

certs_app = typer.Typer(help="Certificates of the node agents (mutual TLS).")


@certs_app.command("renew")
def renew(
    within_days: Annotated[
        int, typer.Option(help="Replace certificates that expire within this many days.")
    ] = 30,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Renew expiring certificates now (a daily schedule does this too)."""
    client = ApiClient(get_settings(), timeout=1800)
    result = client.request("POST", "/v1/certificates/renew", json={"within_days": within_days})
    if json_output:
        print_json(result)
    else:
        console.print(
            f"checked {len(result['checked'])} node(s), renewed {len(result['renewed'])}"
            + "".join(f"\n  renewed      {key}" for key in result["renewed"])
            + "".join(
                f"\n  unreachable  {key}: {why}" for key, why in result["unreachable"].items()
            )
        )
    if result["unreachable"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``certs`` group to the main app."""
    app.add_typer(certs_app, name="certs")
