"""``kombify login --provider NAME`` through a browser and the CLI's loopback redirect.

The API's side of the OIDC login is another branch's (and tested there); here a stand-in of its
two CLI-facing endpoints, by the agreed contract, is added to a real API:
``GET /v1/auth/oidc/{provider}/login?cli_redirect=…`` (-> provider -> callback -> 302 to the
loopback URL with ``?code=…`` or ``?error=…``) and ``POST /v1/auth/oidc/cli-exchange {code}``.
The stand-in's exchange starts a real session, so the saved token then works on real routes.
The browser is a real process too: ``$BROWSER``, which follows the redirects as a browser does.
"""

from __future__ import annotations

import json
import re
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel

from kombify.accounts import sessions, users
from kombify.accounts.tokens import new_secret
from kombify.admin_token import Unauthorized
from kombify.api.app import create_app
from kombify.api.deps import SessionDep
from kombify.api.principal import timeouts
from kombify.api.routes.auth import org_public, user_public
from kombify.api.session_cookies import expires_iso
from kombify.db.models import Organisation
from kombify.errors import NotFoundError
from kombify.settings import Settings
from tests.support.accounts import OWNER, PASSWORD
from tests.support.ports import free_port
from tests.support.served_api import run_cli, served

BROWSER = """#!{python}
import sys, httpx
# A browser: follows every redirect, from kombify to the provider and back to the CLI.
httpx.get(sys.argv[1], follow_redirects=True, timeout=60)
"""
NO_BROWSER = "#!/bin/sh\nexit 0\n"


class Exchange(BaseModel):
    code: str


@dataclass
class FakeOidc:
    """What the stand-in saw and how its provider answers."""

    deny: bool = False
    redirects: list[str] = field(default_factory=list)
    pending: dict[str, str] = field(default_factory=dict)  # state -> cli_redirect
    codes: dict[str, str] = field(default_factory=dict)  # exchange code -> user id


def _fake_oidc(app: FastAPI, fake: FakeOidc) -> None:
    router = APIRouter()

    @router.get("/v1/auth/oidc/{provider}/login")
    def start(provider: str, cli_redirect: str) -> RedirectResponse:
        if provider != "demo":
            raise NotFoundError(f"no OIDC provider `{provider}`")
        fake.redirects.append(cli_redirect)
        state = new_secret()
        fake.pending[state] = cli_redirect
        return RedirectResponse(f"/fake-provider/authorize?{urlencode({'state': state})}", 302)

    @router.get("/fake-provider/authorize")
    def provider_page(state: str) -> RedirectResponse:
        answer = {"error": "access_denied"} if fake.deny else {"code": "from-the-provider"}
        query = urlencode({**answer, "state": state})
        return RedirectResponse(f"/v1/auth/oidc/demo/callback?{query}", 302)

    @router.get("/v1/auth/oidc/{provider}/callback")
    def callback(provider: str, state: str, db: SessionDep, code: str = "") -> RedirectResponse:
        target = fake.pending.pop(state)
        if not code:
            said = urlencode({"error": "access_denied", "error_description": "the user said no"})
            return RedirectResponse(f"{target}?{said}", 302)
        user = users.by_email(db, OWNER)
        assert user is not None
        one_time = new_secret()
        fake.codes[one_time] = user.id
        return RedirectResponse(f"{target}?{urlencode({'code': one_time})}", 302)

    @router.post("/v1/auth/oidc/cli-exchange")
    def exchange(body: Exchange, request: Request, db: SessionDep) -> dict[str, Any]:
        user_id = fake.codes.pop(body.code, None)
        if user_id is None:
            raise Unauthorized("code: unknown or used")
        new = sessions.start(
            db, user_id=user_id, timeouts=timeouts(request.app.state.settings),
            address="127.0.0.1", client="test", mfa_satisfied=True,
        )  # fmt: skip
        user = users.by_email(db, OWNER)
        assert user is not None
        org = db.get(Organisation, user.organisation_id)
        assert org is not None
        return {
            "token": new.token,
            "csrf": new.csrf,
            "expires_at": expires_iso(new.row.expires_at),
            "user": user_public(user, db),
            "organisation": org_public(org),
            "mfa_enrolment_required": False,
        }

    app.include_router(router)


@dataclass
class Setup:
    url: str
    home: Path
    fake: FakeOidc
    browser: Path
    no_browser: Path


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    settings = Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'kombify.db'}",
        temporal_address=f"127.0.0.1:{free_port()}",
    )
    app = create_app(settings)
    fake = FakeOidc()
    _fake_oidc(app, fake)
    browser = tmp_path / "browser"
    browser.write_text(BROWSER.format(python=sys.executable))
    no_browser = tmp_path / "no-browser"
    no_browser.write_text(NO_BROWSER)
    for script in (browser, no_browser):
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    with served(app) as url:
        made = run_cli(
            settings.home, url, "admin", "create-owner", "--email", OWNER, "--password-stdin",
            stdin=PASSWORD,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        yield Setup(url=url, home=settings.home, fake=fake, browser=browser, no_browser=no_browser)


def test_login_through_the_browser_saves_a_working_session(setup: Setup) -> None:
    done = run_cli(setup.home, setup.url, "login", "--provider", "demo", BROWSER=str(setup.browser))
    assert done.returncode == 0, done.stderr
    # Two starts with the same loopback URL: the CLI's check that the provider exists (whose
    # redirect it drops) and the browser's own.
    checked, redirect = setup.fake.redirects
    assert checked == redirect
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/callback", redirect)
    opened = f"{setup.url}/v1/auth/oidc/demo/login?{urlencode({'cli_redirect': redirect})}"
    assert done.stderr == (
        f"Open this address to sign in with demo:\n  {opened}\n"
        "Waiting for the browser (up to 300 s) …\n"
    )
    path = setup.home / "cli" / "credentials.json"
    assert done.stdout == (
        f"signed in to {setup.url} as {OWNER}, organisation `local` (role owner)\n"
        f"session saved in {path}\n"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = json.loads(path.read_text())[setup.url]["token"]
    assert token not in done.stdout + done.stderr
    assert not setup.fake.codes  # the one-time code was traded in

    me = run_cli(setup.home, setup.url, "whoami", "--json")
    assert me.returncode == 0, me.stderr
    assert (json.loads(me.stdout)["user"]["email"], json.loads(me.stdout)["via"]) == (
        OWNER,
        "session",
    )
    assert token not in me.stdout + me.stderr


def test_a_refusal_at_the_provider_is_reported(setup: Setup) -> None:
    setup.fake.deny = True
    done = run_cli(setup.home, setup.url, "login", "--provider", "demo", BROWSER=str(setup.browser))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.endswith("error: sign-in with demo refused: the user said no\n")
    assert not (setup.home / "cli" / "credentials.json").exists()


def test_an_unknown_provider_is_refused_before_any_browser(setup: Setup) -> None:
    done = run_cli(setup.home, setup.url, "login", "--provider", "nope", BROWSER=str(setup.browser))
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "",
        "error: no OIDC provider `nope`\n",
    )


def test_no_answer_from_the_browser_times_out(setup: Setup) -> None:
    done = run_cli(
        setup.home, setup.url, "login", "--provider", "demo", "--timeout", "2",
        BROWSER=str(setup.no_browser),
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.endswith(
        "error: no answer from the browser within 2 s: run `kombify login --provider demo` "
        "again (or --timeout SECONDS for longer)\n"
    )
