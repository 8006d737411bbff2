"""``kombify login --provider NAME``: sign in through the browser, as ``gh`` and ``gcloud`` do.

The CLI listens once on ``http://127.0.0.1:<free port>/callback`` and has the browser open
``/v1/auth/oidc/NAME/login?cli_redirect=<that URL>``. The API sends the browser to the provider,
checks what comes back, and redirects the browser to the loopback URL with a one-time
``code`` (or ``error``); the CLI trades the code for a session token at
``POST /v1/auth/oidc/cli-exchange``. The token never passes through the browser.
"""

from __future__ import annotations

import threading
import webbrowser
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import typer

from kombify.cli.api_client import ApiClient, api_path
from kombify.cli.sign_in import mfa_required, second_factor
from kombify.errors import KombifyError
from kombify.settings import Settings

CALLBACK_PATH = "/callback"
_DONE_PAGE = (
    b"<!doctype html><meta charset=utf-8><title>kombify</title>"
    b"<p>%s You can close this tab and go back to the terminal.</p>"
)


class BrowserLoginError(KombifyError):
    """The browser sign-in did not end with a code (refused, timed out, or unknown provider)."""

    code = "browser-login-failed"
    status = 401


@dataclass
class _Outcome:
    code: str | None = None
    error: str | None = None


class _LoopbackServer(ThreadingHTTPServer):
    """Takes the first ``/callback`` request that carries a ``code`` or an ``error``."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CallbackHandler)
        self.outcome = _Outcome()
        self.answered = threading.Event()

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{CALLBACK_PATH}"


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _LoopbackServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path != CALLBACK_PATH or self.server.answered.is_set():
            self._page(404, b"Nothing here.")
            return
        if query.get("code"):
            self.server.outcome.code = query["code"]
            self._page(200, b"Signed in to kombify.")
        elif query.get("error"):
            said = query.get("error_description") or query["error"]
            self.server.outcome.error = said[:300]
            self._page(400, b"Sign-in refused.")
        else:
            self._page(400, b"This address expects a code from kombify.")
            return
        self.server.answered.set()

    def _page(self, status: int, text: bytes) -> None:
        body = _DONE_PAGE % text
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib's name)
        del format, args  # the query holds the code: never to the terminal


def _check_provider(client: ApiClient, provider: str, redirect_uri: str) -> str:
    """The URL for the browser, after asking the API whether it knows the provider."""
    path = api_path("v1", "auth", "oidc", provider, "login")
    query = urlencode({"cli_redirect": redirect_uri})
    answer = client.send("GET", f"{path}?{query}", follow_redirects=False)
    if answer.status_code >= 400:
        raise client.error(answer, sign_in_hint=False)
    # Not the provider's address from this answer: the browser starts its own login, so any
    # cookie the API sets for it lands in the browser.
    return f"{client.base_url.rstrip('/')}{path}?{query}"


def _open_browser(url: str) -> None:
    # In a thread: some browsers registered through $BROWSER only return when they close.
    threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()


def _browser_code(client: ApiClient, provider: str, *, timeout: float) -> str:
    """One trip through the browser: the one-time code the API sent to the loopback listener."""
    server = _LoopbackServer()
    worker = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2})
    worker.start()
    try:
        url = _check_provider(client, provider, server.redirect_uri)
        typer.echo(f"Open this address to sign in with {provider}:\n  {url}", err=True)
        _open_browser(url)
        typer.echo(f"Waiting for the browser (up to {timeout:g} s) …", err=True)
        if not server.answered.wait(timeout):
            raise BrowserLoginError(
                f"no answer from the browser within {timeout:g} s: run `kombify login "
                f"--provider {provider}` again (or --timeout SECONDS for longer)"
            )
    finally:
        server.shutdown()
        worker.join()
        server.server_close()
    if server.outcome.error is not None:
        raise BrowserLoginError(f"sign-in with {provider} refused: {server.outcome.error}")
    assert server.outcome.code is not None  # answered: a code or an error
    return server.outcome.code


def browser_login(
    settings: Settings, provider: str, *, timeout: float, recovery: bool
) -> dict[str, Any]:
    """Sign in at ``provider`` through the browser; the API's answer with the session token.

    An account with a second factor needs its code with the exchange, and the API spends the
    one-time code on an exchange without it: then the browser goes once more and the TOTP (or,
    with ``recovery``, a recovery) code is asked after it, while fresh.

    Raises:
        BrowserLoginError: The provider or the API refused, or no answer came in time.
    """
    client = ApiClient(settings, credential=None)
    code = _browser_code(client, provider, timeout=timeout)
    answer = client.send("POST", "/v1/auth/oidc/cli-exchange", json={"code": code})
    if mfa_required(answer):
        typer.echo(
            "This account has a second factor: sign in once more in the browser, "
            "then give the code.",
            err=True,
        )
        code = _browser_code(client, provider, timeout=timeout)
        body = {"code": code, **second_factor(recovery=recovery)}
        answer = client.send("POST", "/v1/auth/oidc/cli-exchange", json=body)
    if not answer.is_success:
        raise client.error(answer, sign_in_hint=False)
    data: dict[str, Any] = answer.json()
    if not data.get("token"):
        raise BrowserLoginError("the API's cli-exchange answer holds no token")
    return data
