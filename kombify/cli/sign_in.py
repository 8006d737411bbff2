"""Asking for a password and a second factor, and the calls that take them.

Passwords are read hidden (or as the first line of stdin with ``--password-stdin``) and only
ever go into a request body; TOTP and recovery codes are asked visibly (they work once).
"""

from __future__ import annotations

import sys
from typing import Any

import httpx
import typer

from kombify.cli.api_client import ApiClient, problem
from kombify.cli.output import fail


def read_password(*, from_stdin: bool, confirm: bool = False) -> str:
    """A password: the first line of stdin, or asked without echo (twice with ``confirm``)."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            fail("--password-stdin: stdin gave no password (expected it on the first line)")
        return password
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=confirm, err=True)
    return value


def ask(question: str) -> str:
    """One line of input after ``question`` on stderr (stdout stays the command's output;
    click's own prompt writes a space there)."""
    typer.echo(f"{question}: ", nl=False, err=True)
    line = sys.stdin.readline()
    if not line:
        fail(f"{question.lower()}: stdin ended before an answer")
    return line.strip()


def read_email(email: str | None) -> str:
    """``--email`` or asked."""
    return email or ask("Email")


def mfa_required(response: httpx.Response) -> bool:
    """Whether the API answered that a TOTP (or recovery) code is needed too."""
    return response.status_code == 401 and str(problem(response).get("type", "")).endswith(
        "/mfa-required"
    )


def second_factor(*, recovery: bool) -> dict[str, str]:
    """The code to send: a TOTP code, or a recovery code with ``--recovery-code``."""
    if recovery:
        return {"recovery_code": ask("Recovery code")}
    return {"totp": ask("TOTP code (or run again with --recovery-code)")}


def post_with_second_factor(
    client: ApiClient, path: str, body: dict[str, Any], *, recovery: bool, allow_recovery: bool
) -> Any:
    """POST ``body``; when the API asks for a second factor, ask for it and send once more."""
    response = client.send("POST", path, json=body)
    if mfa_required(response):
        if recovery and not allow_recovery:
            fail("a recovery code is not accepted here: give a TOTP code")
        body = {**body, **second_factor(recovery=recovery and allow_recovery)}
        response = client.send("POST", path, json=body)
    if response.status_code == 204:
        return None
    if not response.is_success:
        raise client.error(response, sign_in_hint=False)
    return response.json()


def reauthenticate(client: ApiClient, *, password_stdin: bool) -> None:
    """Prove the signed-in user is still there (``POST /v1/auth/reauth``) before a sensitive
    change; a no-op for an API key, which the API does not ask."""
    if client.credential is None or client.credential.source != "session":
        return
    typer.echo("This needs your password again.", err=True)
    password = read_password(from_stdin=password_stdin)
    post_with_second_factor(
        client, "/v1/auth/reauth", {"password": password}, recovery=False, allow_recovery=False
    )
