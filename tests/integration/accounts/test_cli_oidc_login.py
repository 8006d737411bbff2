"""``kombify login --provider NAME`` through a browser and the CLI's loopback redirect.

The real thing end to end: the API's OIDC login (``GET /v1/auth/oidc/tiny/login?cli_redirect=…``
-> provider -> callback -> 302 to the CLI's listener with a one-time code, traded at
``POST /v1/auth/oidc/cli-exchange``) with a real OpenID provider process (tests.support's tiny
provider, which signs the next user in at once). The browser is a process too: ``$BROWSER``,
which follows the redirects as a browser does.
"""

from __future__ import annotations

import json
import re
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
from sqlmodel import Session

from kombify.accounts import totp, users
from kombify.api.app import create_app
from kombify.db.account_tables import Credential
from kombify.db.engine import get_engine
from kombify.db.models import utcnow
from kombify.settings import Settings
from tests.support.accounts import OWNER, PASSWORD
from tests.support.oidc_servers import TinyProvider, TinyUser
from tests.support.ports import free_port
from tests.support.served_api import run_cli, served

BROWSER = """#!{python}
import sys, httpx
# A browser: follows every redirect, from kombify to the provider and back to the CLI.
httpx.get(sys.argv[1], follow_redirects=True, timeout=60)
"""
NO_BROWSER = "#!/bin/sh\nexit 0\n"
CLIENT_ID = "kombify-cli-test"
CLIENT_SECRET = "client-secret-never-shown"


@dataclass
class Setup:
    url: str
    settings: Settings
    tiny: TinyProvider
    browser: Path
    no_browser: Path

    @property
    def home(self) -> Path:
        return self.settings.home

    def login(
        self, *args: str, browser: Path | None = None, stdin: str = ""
    ) -> tuple[int, str, str]:
        done = run_cli(
            self.home, self.url, "login", *args, stdin=stdin, BROWSER=str(browser or self.browser)
        )
        return done.returncode, done.stdout, done.stderr

    def saved_token(self) -> str:
        saved = json.loads((self.home / "cli" / "credentials.json").read_text())
        return str(saved[self.url]["token"])


def _script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    """The API with its OIDC login at provider `tiny`, which signs in the first owner."""
    tiny = TinyProvider(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    tiny.next = TinyUser(subject="owner-at-tiny", claims={"email": OWNER, "email_verified": True})
    port = free_port()  # the API's own address is its public URL: the provider's redirect URI
    provider = {"issuer": tiny.url, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    settings = Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'kombify.db'}",
        temporal_address=f"127.0.0.1:{free_port()}",
        public_url=f"http://127.0.0.1:{port}",
        oidc_providers=json.dumps({"tiny": provider}),
    )
    browser = _script(tmp_path / "browser", BROWSER.format(python=sys.executable))
    no_browser = _script(tmp_path / "no-browser", NO_BROWSER)
    try:
        with served(create_app(settings), port=port) as url:
            made = run_cli(
                settings.home, url, "admin", "create-owner", "--email", OWNER,
                "--password-stdin", stdin=PASSWORD,
            )  # fmt: skip
            assert made.returncode == 0, made.stderr
            yield Setup(url, settings, tiny, browser, no_browser)
    finally:
        tiny.close()


def test_login_through_the_browser_saves_a_working_session(setup: Setup) -> None:
    code, out, err = setup.login("--provider", "tiny")
    assert code == 0, err
    opened = re.fullmatch(
        r"Open this address to sign in with tiny:\n  (\S+)\n"
        r"Waiting for the browser \(up to 300 s\) …\n",
        err,
    )
    assert opened is not None, err
    loopback = re.search(r"cli_redirect=(http%3A%2F%2F127\.0\.0\.1%3A\d+%2Fcallback)$", opened[1])
    assert loopback is not None and opened[1].startswith(f"{setup.url}/v1/auth/oidc/tiny/login?")
    path = setup.home / "cli" / "credentials.json"
    assert out == (
        f"signed in to {setup.url} as {OWNER}, organisation `local` (role owner)\n"
        f"session saved in {path}\n"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = setup.saved_token()
    assert token.startswith("kfs_") and token not in out + err

    me = run_cli(setup.home, setup.url, "whoami", "--json")
    assert me.returncode == 0, me.stderr
    seen = json.loads(me.stdout)
    assert (seen["user"]["email"], seen["via"]) == (OWNER, "session")
    assert token not in me.stdout + me.stderr


def test_an_account_with_totp_goes_through_the_browser_again_and_gives_its_code(
    setup: Setup,
) -> None:
    with Session(get_engine(setup.settings.resolved_database_url)) as db:
        user = users.by_email(db, OWNER)
        assert user is not None
        cred = db.get(Credential, user.id)
        assert cred is not None
        cred.totp_secret = totp.new_secret()
        cred.totp_enabled_at = utcnow()
        db.add(cred)
        db.commit()
        secret = cred.totp_secret
    code, out, err = setup.login("--provider", "tiny", stdin=pyotp.TOTP(secret).now() + "\n")
    assert code == 0, err
    assert err.count("Open this address to sign in with tiny:") == 2
    assert "This account has a second factor: sign in once more in the browser" in err
    assert err.endswith("TOTP code (or run again with --recovery-code): ")
    assert out.startswith(f"signed in to {setup.url} as {OWNER}")

    wrong, out, err = setup.login("--provider", "tiny", stdin="000000\n")
    assert (wrong, out) == (1, "")
    assert err.endswith("error: wrong or already used code\n")


def test_a_refused_login_is_reported_and_nothing_saved(setup: Setup) -> None:
    setup.tiny.next = TinyUser(
        subject="stranger", claims={"email": "owner@example.org", "email_verified": False}
    )
    code, out, err = setup.login("--provider", "tiny")
    assert (code, out) == (1, "")
    assert err.splitlines()[-1] == (
        "error: sign-in with tiny refused: tiny does not say `owner@example.org` is verified: "
        "verify it there first; kombify links accounts by verified email only"
    )
    assert not (setup.home / "cli" / "credentials.json").exists()


def test_an_unknown_provider_is_refused_before_any_browser(setup: Setup) -> None:
    code, out, err = setup.login("--provider", "nope")
    assert (code, out) == (1, "")
    assert err == "error: provider: no login provider `nope`; configured: `tiny`\n"


def test_no_answer_from_the_browser_times_out(setup: Setup) -> None:
    code, out, err = setup.login("--provider", "tiny", "--timeout", "2", browser=setup.no_browser)
    assert (code, out) == (1, "")
    assert err.endswith(
        "error: no answer from the browser within 2 s: run `kombify login --provider tiny` "
        "again (or --timeout SECONDS for longer)\n"
    )
