"""The ``kombify`` CLI signing in and out against a real API (uvicorn on loopback).

Each command runs as its own process, as a user or a script runs it: what it prints, its exit
code, the credentials file it leaves, and that no session token ever reaches its output.
"""

from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyotp
import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from kombify.accounts import orgs, totp, users
from kombify.api.app import create_app
from kombify.cli.main import app as cli_app
from kombify.db.account_tables import Credential
from kombify.db.engine import get_engine
from kombify.db.models import utcnow
from kombify.settings import Settings, get_settings
from tests.support.ports import free_port
from tests.support.served_api import run_cli, served

OWNER = "owner@example.org"
PASSWORD = "a long enough passphrase"
RETIRED = (
    "error: the local admin token is turned off since the first owner exists: "
    "`kombify login`, or set KOMBIFY_API_KEY\n"
)


@dataclass
class Api:
    """A running API, its home (the CLI's too) and everything the CLI printed so far."""

    url: str
    settings: Settings
    outputs: list[str] = field(default_factory=list)

    def cli(
        self, *args: str, stdin: str = "", home: Path | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        done = run_cli(home or self.settings.home, self.url, *args, stdin=stdin, **env)
        self.outputs += [done.stdout, done.stderr]
        return done

    def db(self) -> Session:
        return Session(get_engine(self.settings.resolved_database_url))

    def credentials(self, home: Path | None = None) -> dict[str, dict[str, str]]:
        data: dict[str, dict[str, str]] = json.loads(
            ((home or self.settings.home) / "cli" / "credentials.json").read_text()
        )
        return data

    def enable_totp(self, email: str) -> str:
        """Turn TOTP on for ``email`` directly in the database; its secret."""
        with self.db() as db:
            user = users.by_email(db, email)
            assert user is not None
            cred = db.get(Credential, user.id)
            assert cred is not None
            cred.totp_secret = totp.new_secret()
            cred.totp_enabled_at = utcnow()
            db.add(cred)
            db.commit()
            return cred.totp_secret


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'kombify.db'}",
        temporal_address=f"127.0.0.1:{free_port()}",
    )
    with served(create_app(settings)) as url:
        yield Api(url=url, settings=settings)


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def _owner_with_totp(api: Api) -> str:
    made = api.cli("admin", "create-owner", "--email", OWNER, "--password-stdin", stdin=PASSWORD)
    assert made.returncode == 0, made.stderr
    return api.enable_totp(OWNER)


def test_create_owner_login_with_totp_api_key_and_logout(api: Api) -> None:
    before = api.cli("whoami")
    assert before.returncode == 0, before.stderr
    assert _lines(before.stdout)[:3] == [
        "user          - (the local admin token)",
        "organisation  local (role owner)",
        "via           admin-token",
    ]

    made = api.cli("admin", "create-owner", "--email", OWNER, "--password-stdin", stdin=PASSWORD)
    assert (made.returncode, made.stderr) == (0, "")
    assert made.stdout == (
        f"first owner {OWNER} created in organisation `local`\n"
        f"the local admin token is now turned off: sign in with `kombify login --email {OWNER}`\n"
    )
    refused = api.cli("whoami")
    assert (refused.returncode, refused.stdout, refused.stderr) == (1, "", RETIRED)

    secret = api.enable_totp(OWNER)
    code = pyotp.TOTP(secret).now()
    login = api.cli("login", "--email", OWNER, "--password-stdin", stdin=f"{PASSWORD}\n{code}\n")
    assert login.returncode == 0, login.stderr
    assert login.stderr == "TOTP code (or run again with --recovery-code): "
    path = api.settings.home / "cli" / "credentials.json"
    assert login.stdout == (
        f"signed in to {api.url} as {OWNER}, organisation `local` (role owner)\n"
        f"session saved in {path}\n"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    saved = api.credentials()[api.url]
    token = saved["token"]
    assert token.startswith("kfs_") and saved["email"] == OWNER

    me = api.cli("whoami")
    assert me.returncode == 0, me.stderr
    assert _lines(me.stdout) == [
        f"user           {OWNER}",
        "organisation   local (role owner)",
        "via            session",
        "second factor  on",
        f"api            {api.url}",
    ]

    made_key = api.cli("api-keys", "create", "ci", "--scope", "deploy", "--expires-in-days", "30")
    assert made_key.returncode == 0, made_key.stderr
    key = made_key.stdout.strip()
    assert key.startswith("kfk_") and made_key.stdout == key + "\n"
    assert "Store it now: it is not shown again." in made_key.stderr

    as_key = api.cli("whoami", "--json", KOMBIFY_API_KEY=key)
    assert as_key.returncode == 0, as_key.stderr
    seen = json.loads(as_key.stdout)
    assert (seen["via"], seen["on_behalf_of"], seen["role"]) == ("api-key", "api key ci", "member")

    listed = api.cli("api-keys", "list", "--json")
    [row] = json.loads(listed.stdout)["data"]
    assert (row["name"], row["scope"], row["revoked"]) == ("ci", "deploy", False)
    table = api.cli("api-keys", "list")
    assert _lines(table.stdout)[1].split()[:4] == [row["id"], "ci", "deploy", row["prefix"]]
    assert key not in listed.stdout + table.stdout

    revoked = api.cli("api-keys", "revoke", row["id"])
    assert (revoked.returncode, revoked.stdout) == (0, f"API key `{row['id']}` revoked\n")
    after = api.cli("whoami", KOMBIFY_API_KEY=key)
    assert (after.returncode, after.stdout) == (1, "")
    assert after.stderr == (
        "error: unknown, revoked or expired API key (KOMBIFY_API_KEY was sent: make a new key "
        "with `kombify api-keys create`, or unset it)\n"
    )

    out = api.cli("logout")
    assert (out.returncode, out.stdout) == (0, f"signed out of {api.url}\n")
    assert api.url not in api.credentials()
    # Nothing saved any more: the CLI is back to the admin token, which stays off.
    assert api.cli("whoami").stderr == RETIRED
    again = api.cli("logout")
    assert (again.returncode, again.stdout) == (0, f"not signed in to {api.url}\n")

    assert not [text for text in api.outputs if token in text or PASSWORD in text]


def test_the_session_ends_at_the_api_on_logout_and_a_dead_one_says_login(api: Api) -> None:
    api.cli("admin", "create-owner", "--email", OWNER, "--password-stdin", stdin=PASSWORD)
    assert api.cli("login", "--email", OWNER, "--password-stdin", stdin=PASSWORD).returncode == 0
    first = api.credentials()[api.url]["token"]
    # A second login replaces the first, which ends at the API too (no orphaned session).
    assert api.cli("login", "--email", OWNER, "--password-stdin", stdin=PASSWORD).returncode == 0
    second = api.credentials()[api.url]["token"]
    assert first != second
    sessions = json.loads(api.cli("sessions", "list", "--json").stdout)["data"]
    assert [s["current"] for s in sessions] == [True]
    assert sessions[0]["client"].startswith("kombify-cli/")  # what the user sees in lists

    # The same person on a second machine (another CLI home), then ended from the first.
    laptop = api.settings.home.parent / "laptop"
    signed_in = api.cli("login", "--email", OWNER, "--password-stdin", stdin=PASSWORD, home=laptop)
    assert signed_in.returncode == 0, signed_in.stderr
    others = api.cli("sessions", "revoke-others")
    assert (others.returncode, others.stdout) == (0, "1 other session(s) ended\n")
    ended_elsewhere = api.cli("whoami", home=laptop)
    assert ended_elsewhere.returncode == 1
    assert "your session ended" in ended_elsewhere.stderr
    # Signing out works whatever organisation is chosen (the session is not about one).
    again = api.cli("login", "--email", OWNER, "--password-stdin", stdin=PASSWORD, home=laptop)
    assert again.returncode == 0, again.stderr
    out = api.cli("logout", home=laptop, KOMBIFY_ORG="nowhere")
    assert (out.returncode, out.stdout) == (0, f"signed out of {api.url}\n")
    assert api.url not in api.credentials(laptop)

    [current] = sessions
    ended = api.cli("sessions", "revoke", current["id"])
    assert ended.stdout == f"session `{current['id']}` ended: it was this CLI's, signed out\n"
    assert api.url not in api.credentials()

    assert api.cli("login", "--email", OWNER, "--password-stdin", stdin=PASSWORD).returncode == 0
    token = api.credentials()[api.url]["token"]
    with api.db() as db:
        from kombify.accounts import sessions as session_rows
        from kombify.api.principal import timeouts

        row = session_rows.find(db, token, timeouts(api.settings))
        assert row is not None
        session_rows.revoke(db, row)
    dead = api.cli("whoami")
    assert (dead.returncode, dead.stdout) == (1, "")
    assert dead.stderr == (
        "error: your session ended (signed out, revoked or timed out): sign in again "
        "(run `kombify login` again)\n"
    )


def test_wrong_password_wrong_code_and_a_recovery_code(api: Api) -> None:
    _owner_with_totp(api)
    with api.db() as db:
        user = users.by_email(db, OWNER)
        assert user is not None
        codes = totp.new_recovery_codes(db, user.id)

    wrong = api.cli("login", "--email", OWNER, "--password-stdin", stdin="not the password!\n")
    assert (wrong.returncode, wrong.stdout) == (1, "")
    assert wrong.stderr == "error: wrong email or password\n"

    bad_code = api.cli("login", "--email", OWNER, "--password-stdin", stdin=f"{PASSWORD}\n000000\n")
    assert bad_code.returncode == 1
    assert bad_code.stderr.endswith("error: wrong or already used code\n")
    assert not (api.settings.home / "cli" / "credentials.json").exists()

    recovered = api.cli(
        "login", "--email", OWNER, "--password-stdin", "--recovery-code",
        stdin=f"{PASSWORD}\n{codes[0]}\n",
    )  # fmt: skip
    assert recovered.returncode == 0, recovered.stderr
    assert recovered.stderr == "Recovery code: "
    assert api.url in api.credentials()

    mixed = api.cli("login", "--provider", "demo", "--email", OWNER)
    assert (mixed.returncode, mixed.stderr) == (
        2,
        "error: --provider signs in through the browser: leave out --email and --password-stdin\n",
    )


def test_organisations_members_invitations_and_activity(api: Api, tmp_path: Path) -> None:
    api.cli("admin", "create-owner", "--email", OWNER, "--password-stdin", stdin=PASSWORD)
    assert api.cli("login", "--email", OWNER, "--password-stdin", stdin=PASSWORD).returncode == 0

    made = api.cli("orgs", "create", "lab", "--name", "The lab")
    assert made.stdout == (
        "organisation `lab` created; you are its owner "
        "(act in it with `kombify --org lab …` or KOMBIFY_ORG=lab)\n"
    )
    assert _lines(api.cli("orgs", "list").stdout) == [
        "slug   name           role",
        "lab    The lab        owner",
        "local  Local homelab  owner",
    ]
    assert "organisation   lab (role owner)" in _lines(api.cli("--org", "lab", "whoami").stdout)
    assert "organisation   lab (role owner)" in _lines(api.cli("whoami", KOMBIFY_ORG="lab").stdout)

    # Bob has an account of his own (another organisation) and his own CLI home.
    with api.db() as db:
        elsewhere = orgs.create(db, slug="bobs")
        users.create(
            db, email="bob@example.org", organisation=elsewhere, role="owner",
            password=PASSWORD, email_verified=True,
        )  # fmt: skip
    invited = api.cli("invite", "bob@example.org", "--role", "viewer", "--org", "lab", "--json")
    assert invited.returncode == 0, invited.stderr
    token = json.loads(invited.stdout)["token"]
    bob = tmp_path / "bob-home"
    assert (
        api.cli(
            "login", "--email", "bob@example.org", "--password-stdin", stdin=PASSWORD, home=bob
        ).returncode
        == 0
    )
    joined = api.cli("invitations", "accept", token, home=bob)
    assert (joined.returncode, joined.stdout) == (0, "joined `lab` as viewer\n")
    again = api.cli("invitations", "accept", token, home=bob)
    assert again.returncode == 1 and again.stderr.startswith("error: ")

    members = api.cli("--org", "lab", "members", "list", "--json")
    assert sorted((m["email"], m["role"]) for m in json.loads(members.stdout)["data"]) == [
        ("bob@example.org", "viewer"), (OWNER, "owner"),
    ]  # fmt: skip
    # A viewer reads, and is refused the activity log (admins only) with the API's reason.
    assert api.cli("members", "list", "--org", "lab", home=bob).returncode == 0
    refused = api.cli("activity", "--org", "lab", home=bob)
    assert refused.returncode == 1 and refused.stderr.startswith("error: ")

    log = api.cli("activity", "--org", "lab", "--json")
    actions = [e["action"] for e in json.loads(log.stdout)["data"]]
    assert {"org-create", "invitation-accept"} <= set(actions)
    with api.db() as db:
        owner = users.by_email(db, OWNER)
        assert owner is not None
    mine = api.cli("activity", "--user", owner.id, "--limit", "1", "--json")
    [entry] = json.loads(mine.stdout)["data"]
    assert entry["user_id"] == owner.id
    table = _lines(api.cli("activity", "--org", "lab").stdout)
    assert table[0].split() == ["at", "actor", "via", "action", "object", "outcome", "address"]

    unknown = api.cli("members", "list", "--org", "nowhere")
    assert (unknown.returncode, unknown.stderr) == (1, "error: no organisation `nowhere`\n")
    bad = api.cli("members", "list", "--org", "../x")
    assert bad.returncode == 2 and "expected" in bad.stderr


def test_an_admin_scoped_key_asks_for_the_password_and_code_again(api: Api) -> None:
    api.cli("admin", "create-owner", "--email", OWNER, "--password-stdin", stdin=PASSWORD)
    assert api.cli("login", "--email", OWNER, "--password-stdin", stdin=PASSWORD).returncode == 0
    secret = api.enable_totp(OWNER)  # after the login: its code is asked only at re-auth

    wrong = api.cli("api-keys", "create", "ops", "--scope", "admin", "--password-stdin",
                    stdin="not the password!\n")  # fmt: skip
    assert (wrong.returncode, wrong.stdout) == (1, "")
    assert wrong.stderr == "This needs your password again.\nerror: wrong password\n"

    code = pyotp.TOTP(secret).now()
    made = api.cli("api-keys", "create", "ops", "--scope", "admin", "--password-stdin",
                   stdin=f"{PASSWORD}\n{code}\n")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("kfk_")
    assert made.stderr.startswith(
        "This needs your password again.\nTOTP code (or run again with --recovery-code): "
    )


def test_login_asks_for_email_password_and_code_when_typed(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = _owner_with_totp(api)
    # In this process (typer's runner feeds the typed lines, the password to the hidden prompt).
    monkeypatch.setenv("KOMBIFY_HOME", str(api.settings.home))
    monkeypatch.setenv("KOMBIFY_API_URL", api.url)
    get_settings.cache_clear()
    typed = f"{OWNER}\n{PASSWORD}\n{pyotp.TOTP(secret).now()}\n"
    result = CliRunner().invoke(cli_app, ["login"], input=typed, env={"NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("Email: Password:")  # the password not echoed
    assert PASSWORD not in result.output
    assert "TOTP code (or run again with --recovery-code): " in result.stderr
    # (typer's runner ends the hidden prompt with a newline on stdout; a terminal does not)
    assert result.stdout.lstrip().startswith(f"signed in to {api.url} as {OWNER}")
    assert api.credentials()[api.url]["email"] == OWNER
