"""``kombify login``, ``logout``, ``whoami`` and ``admin create-owner``.

``login`` saves the session token for the API URL in ``$KOMBIFY_HOME/cli/credentials.json``
(mode 0600); every later command sends it unless ``KOMBIFY_API_KEY`` is set. No command prints
a session token.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from kombify.admin_token import admin_token, token_path
from kombify.cli import oidc_login
from kombify.cli.api_client import ApiClient
from kombify.cli.credentials import (
    Credential,
    SavedLogin,
    forget_login,
    save_login,
    saved_login,
)
from kombify.cli.output import console, fail, print_json
from kombify.cli.sign_in import post_with_second_factor, read_email, read_password
from kombify.settings import Settings, get_settings

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
EmailOpt = Annotated[str | None, typer.Option("--email", help="Account email (else asked).")]
PasswordStdinOpt = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from the first line of stdin."),
]

admin_app = typer.Typer(help="The installation's first owner (with the local admin token).")


def login(
    email: EmailOpt = None,
    password_stdin: PasswordStdinOpt = False,
    recovery_code: Annotated[
        bool,
        typer.Option(
            "--recovery-code",
            help="When a second factor is asked, give a recovery code instead of a TOTP code.",
        ),
    ] = False,
    provider: Annotated[
        str | None,
        typer.Option("--provider", help="Sign in through the browser with this OIDC provider."),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=1, help="Seconds to wait for the browser (--provider)."),
    ] = 300,
) -> None:
    """Sign in (email, password and TOTP if on; or --provider through the browser)."""
    settings = get_settings()
    if provider is not None:
        if email or password_stdin:
            fail(
                "--provider signs in through the browser: leave out --email and --password-stdin",
                code=2,
            )
        answer = oidc_login.browser_login(
            settings, provider, timeout=timeout, recovery=recovery_code
        )
    else:
        address = read_email(email)
        password = read_password(from_stdin=password_stdin)
        answer = post_with_second_factor(
            ApiClient(settings, credential=None),
            "/v1/auth/login",
            {"email": address, "password": password},
            recovery=recovery_code,
            allow_recovery=True,
        )
    _keep(settings, answer)


def _keep(settings: Settings, answer: dict[str, Any]) -> None:
    """Save the new session, end the one it replaces, and say who is signed in where."""
    previous = saved_login(settings)
    user = answer.get("user") or {}
    org = answer.get("organisation") or {}
    path = save_login(
        settings,
        SavedLogin(
            token=answer["token"],
            email=str(user.get("email", "")),
            organisation=str(org.get("slug", "")),
            expires_at=str(answer.get("expires_at", "")),
        ),
    )
    if previous is not None and previous.token != answer["token"]:
        # One login per API URL: the replaced session would otherwise live on unused.
        ApiClient(settings, credential=Credential(previous.token, "session"), send_org=False).send(
            "POST", "/v1/auth/logout"
        )
    me = ApiClient(settings, credential=Credential(answer["token"], "session")).request(
        "GET", "/v1/me"
    )
    console.print(
        f"signed in to {settings.resolved_api_url} as {me['user']['email']}, "
        f"organisation `{me['organisation']['slug']}` (role {me['role']})",
        markup=False,
    )
    console.print(f"session saved in {path}", markup=False)
    if settings.api_key is not None:
        console.print(
            "KOMBIFY_API_KEY is set: commands send it, not this session, until you unset it",
            markup=False,
        )
    if me.get("mfa_enrolment_required"):
        console.print(
            f"`{me['organisation']['slug']}` requires a second factor: set up TOTP "
            "(POST /v1/auth/mfa/totp) before anything else works",
            markup=False,
        )


def logout() -> None:
    """Sign out: end the saved session at the API and forget it here."""
    settings = get_settings()
    saved = saved_login(settings)
    if saved is None:
        console.print(f"not signed in to {settings.resolved_api_url}", markup=False)
    else:
        client = ApiClient(settings, credential=Credential(saved.token, "session"), send_org=False)
        answer = client.send("POST", "/v1/auth/logout")
        if answer.status_code not in (204, 401):  # 401: it had ended already
            raise client.error(answer)
        forget_login(settings)
        console.print(f"signed out of {settings.resolved_api_url}", markup=False)
    if settings.api_key is not None:
        console.print("KOMBIFY_API_KEY is still set: commands keep using it", markup=False)


def whoami(json_output: JsonOpt = False) -> None:
    """Who the CLI acts as, in which organisation and with which role."""
    client = ApiClient(get_settings())
    me: dict[str, Any] = client.request("GET", "/v1/me")
    if json_output:
        print_json(me)
        return
    user = me.get("user")
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column()
    table.add_column()
    who = f"{user['email']} ({user['name']})" if user and user["name"] else None
    table.add_row("user", who or (user["email"] if user else "- (the local admin token)"))
    table.add_row("organisation", f"{me['organisation']['slug']} (role {me['role']})")
    others = [f"{o['slug']} ({o['role']})" for o in me.get("organisations", [])]
    if len(others) > 1:
        table.add_row("member of", ", ".join(others))
    via = me["via"] + (f", {me['on_behalf_of']}" if me.get("on_behalf_of") else "")
    table.add_row("via", via)
    if user is not None:
        table.add_row("second factor", "on" if user["mfa_enabled"] else "off")
    table.add_row("api", client.base_url)
    console.print(table)


@admin_app.command("create-owner")
def create_owner(
    email: EmailOpt = None,
    name: Annotated[str, typer.Option("--name", help="Display name.")] = "",
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Make the first owner with the local admin token, which is turned off from then on."""
    settings = get_settings()
    token = admin_token(settings)
    if token is None:
        fail(
            f"no admin token in `{token_path(settings)}`: run this on the machine the API "
            "runs on, with its KOMBIFY_HOME (or set KOMBIFY_ADMIN_TOKEN)"
        )
    address = read_email(email)
    password = read_password(from_stdin=password_stdin, confirm=not password_stdin)
    made = ApiClient(settings, credential=Credential(token, "admin-token")).request(
        "POST", "/v1/admin/owner", json={"email": address, "password": password, "name": name}
    )
    console.print(
        f"first owner {made['user']['email']} created in organisation "
        f"`{made['organisation']['slug']}`",
        markup=False,
    )
    console.print(
        "the local admin token is now turned off: sign in with "
        f"`kombify login --email {made['user']['email']}`",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    """Add ``login``, ``logout``, ``whoami`` and the ``admin`` group to the main app."""
    app.command("login")(login)
    app.command("logout")(logout)
    app.command("whoami")(whoami)
    app.add_typer(admin_app, name="admin")
