"""SSO between two running kombify instances: a portal (P) and a Stack (S) that trusts it.

Both run as their own `kombify api` processes on loopback ports, each with its own
KOMBIFY_HOME and SQLite database. S fetches P's keys over HTTP (no cache: every token makes S
look at P's JWKS, so a key P removed is refused at once).
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlmodel import Session, col, select

from kombify.accounts import orgs, sessions, users
from kombify.accounts.sessions import Timeouts
from kombify.db.account_tables import Membership
from kombify.db.engine import get_engine
from kombify.db.models import Organisation, User, utcnow
from kombify.db.sso_tables import SigningKey
from kombify.identity.signing_keys import ALGORITHM, private_key
from kombify.identity.tool_bridge import reachability
from kombify.settings import Settings
from tests.support.api_process import ApiProcess, running_api
from tests.support.ports import free_port

GRACE_MINUTES = 60


@dataclass
class Echo:
    """A loopback HTTP server standing in for a tool: it records every request it gets."""

    url: str
    seen: list[dict[str, Any]]


class _EchoHandler(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        record = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        }
        self.seen.append(record)
        data = json.dumps({"echo": self.path}).encode()
        self.send_response(207)
        self.send_header("content-type", "application/json")
        self.send_header("set-cookie", "tool_session=abc")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        del format, args


@pytest.fixture(scope="module")
def echo() -> Iterator[Echo]:
    seen: list[dict[str, Any]] = []
    handler = type("Handler", (_EchoHandler,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Echo(url=f"http://127.0.0.1:{server.server_address[1]}", seen=seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {"portal": free_port(), "stack": free_port(), "down": free_port()}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, ports: dict[str, int]) -> Iterator[ApiProcess]:
    env = {
        "KOMBIFY_SSO_TRUSTED_ISSUER": f"http://127.0.0.1:{ports['portal']}",
        "KOMBIFY_SSO_AUDIENCE": "stack",
        "KOMBIFY_SSO_JWKS_CACHE_SECONDS": "0",
    }
    with running_api(tmp_path_factory.mktemp("stack"), port=ports["stack"], env=env) as api:
        yield api


@pytest.fixture(scope="module")
def portal(
    tmp_path_factory: pytest.TempPathFactory,
    ports: dict[str, int],
    stack: ApiProcess,
    echo: Echo,
) -> Iterator[ApiProcess]:
    env = {
        "KOMBIFY_SSO_AUDIENCES": "other",
        "KOMBIFY_SSO_KEY_GRACE_MINUTES": str(GRACE_MINUTES),
        "KOMBIFY_TOOLS": f"stack={stack.url},echo={echo.url},down=http://127.0.0.1:{ports['down']}",
    }
    with running_api(tmp_path_factory.mktemp("portal"), port=ports["portal"], env=env) as api:
        yield api


@dataclass(frozen=True)
class SignedIn:
    """A user with a session at the portal."""

    user_id: str
    email: str
    org_id: str
    org_slug: str
    session: str


def sign_in(portal: ApiProcess, *, role: str = "member") -> SignedIn:
    """A new organisation and user at P, with a live session (made in P's database)."""
    with Session(get_engine(portal.database_url)) as db:
        org = orgs.create(db, slug=f"team-{secrets.token_hex(3)}")
        user = users.create(
            db, email=f"u{secrets.token_hex(4)}@example.org", organisation=org, role=role
        )
        started = sessions.start(
            db,
            user_id=user.id,
            timeouts=Timeouts(idle=timedelta(hours=1), absolute=timedelta(days=1)),
        )
        return SignedIn(user.id, user.email, org.id, org.slug, started.token)


def sso_token(portal: ApiProcess, who: SignedIn, audience: str = "stack") -> httpx.Response:
    return httpx.post(
        f"{portal.url}/v1/sso/tokens",
        json={"audience": audience},
        headers={"Authorization": f"Bearer {who.session}"},
    )


def token_for(portal: ApiProcess, who: SignedIn, audience: str = "stack") -> str:
    answer = sso_token(portal, who, audience)
    assert answer.status_code == 201, answer.text
    token: str = answer.json()["token"]
    return token


def stacks_at(stack: ApiProcess, token: str) -> httpx.Response:
    return httpx.get(f"{stack.url}/v1/stacks", headers={"Authorization": f"Bearer {token}"})


def refused(answer: httpx.Response, token: str) -> str:
    """The 401's detail, after checking it repeats nothing of the token."""
    assert answer.status_code == 401, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    for part in token.split("."):
        assert part not in answer.text
    detail: str = answer.json()["detail"]
    return detail


def crafted(portal: ApiProcess, key: SigningKey, who: SignedIn, **claims: Any) -> str:
    """A token signed with one of P's keys (read from P's database) with chosen claims."""
    now = int(utcnow().timestamp())
    body = {
        "iss": portal.url,
        "aud": "stack",
        "sub": who.user_id,
        "email": who.email,
        "org_id": who.org_id,
        "org_slug": who.org_slug,
        "role": "member",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": secrets.token_hex(8),
        **claims,
    }
    header = {"alg": ALGORITHM, "kid": key.kid}
    return jwt.encode(header, body, private_key(key), algorithms=[ALGORITHM])


def portal_keys(portal: ApiProcess) -> list[SigningKey]:
    with Session(get_engine(portal.database_url)) as db:
        rows = db.exec(select(SigningKey).order_by(col(SigningKey.created_at).desc())).all()
        for row in rows:
            db.expunge(row)
        return list(rows)


# ---- the token is accepted as the same person in the same organisation ---------------------


def test_a_portal_token_for_stack_is_accepted_as_the_same_user_and_organisation(
    portal: ApiProcess, stack: ApiProcess
) -> None:
    who = sign_in(portal)
    answer = sso_token(portal, who)
    assert answer.status_code == 201, answer.text
    issued = answer.json()
    assert issued["audience"] == "stack" and issued["token_type"] == "Bearer"
    assert issued["expires_in"] == 300  # KOMBIFY_SSO_TOKEN_MINUTES' default: 5

    listed = stacks_at(stack, issued["token"])

    assert listed.status_code == 200, listed.text
    assert listed.json()["count"] == 0
    with Session(get_engine(stack.database_url)) as db:
        user = db.get(User, who.user_id)
        org = db.get(Organisation, who.org_id)
        assert user is not None and org is not None
        assert (user.email, user.organisation_id, org.slug) == (who.email, who.org_id, who.org_slug)
        member = orgs.membership(db, who.org_id, who.user_id)
        assert member is not None and member.role == "member"
    # A second token maps to the same rows, not new ones.
    assert stacks_at(stack, token_for(portal, who)).status_code == 200
    with Session(get_engine(stack.database_url)) as db:
        assert len(db.exec(select(User).where(User.email == who.email)).all()) == 1
        assert len(db.exec(select(Membership).where(Membership.user_id == who.user_id)).all()) == 1


def test_the_token_carries_the_callers_role_a_viewer_only_reads_on_the_stack(
    portal: ApiProcess, stack: ApiProcess
) -> None:
    viewer = sign_in(portal, role="viewer")
    token = token_for(portal, viewer)

    assert stacks_at(stack, token).status_code == 200
    change = httpx.post(
        f"{stack.url}/v1/stacks",
        json={"source": "name: lab\n", "filename": "lab.yaml"},
        headers={"Authorization": f"Bearer {token}"},
    )

    assert change.status_code == 403, change.text
    assert "your role in" in change.json()["detail"] and "viewer" in change.json()["detail"]


def test_the_jwks_publishes_public_keys_only(portal: ApiProcess) -> None:
    answer = httpx.get(f"{portal.url}/.well-known/jwks.json")

    assert answer.status_code == 200
    keys = answer.json()["keys"]
    assert keys and all(set(k) == {"kty", "crv", "x", "kid", "alg", "use"} for k in keys)
    assert KeySet.import_key_set(answer.json())  # a valid JWKS
    assert all(k["alg"] == "Ed25519" and k["use"] == "sig" for k in keys)


# ---- what the portal refuses to issue --------------------------------------------------------


def test_the_portal_issues_only_for_configured_audiences(portal: ApiProcess) -> None:
    answer = sso_token(portal, sign_in(portal), audience="billing")

    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == (
        "audience: expected a tool this portal issues tokens for (`other`, `stack`, `echo`, "
        "`down`), got `billing`"
    )


def test_the_admin_token_gets_no_sso_token(portal: ApiProcess) -> None:
    answer = httpx.post(
        f"{portal.url}/v1/sso/tokens",
        json={"audience": "stack"},
        headers={"Authorization": f"Bearer {portal.admin_token}"},
    )

    assert answer.status_code == 403, answer.text
    assert "not the admin token" in answer.json()["detail"]


# ---- what the Stack refuses -----------------------------------------------------------------


def test_a_token_for_another_audience_is_refused(portal: ApiProcess, stack: ApiProcess) -> None:
    token = token_for(portal, sign_in(portal), audience="other")

    detail = refused(stacks_at(stack, token), token)

    assert detail == "SSO token refused: it is for another tool, not `stack`"


def test_an_expired_token_is_refused(portal: ApiProcess, stack: ApiProcess) -> None:
    who = sign_in(portal)
    token_for(portal, who)  # P has an active key
    now = int(utcnow().timestamp())
    token = crafted(
        portal, portal_keys(portal)[0], who, iat=now - 900, nbf=now - 900, exp=now - 120
    )

    detail = refused(stacks_at(stack, token), token)

    assert detail == "SSO token refused: it expired; get a new one from the portal"
    with Session(get_engine(stack.database_url)) as db:
        assert db.get(User, who.user_id) is None  # nothing was mapped


def test_a_token_with_a_tampered_payload_is_refused(portal: ApiProcess, stack: ApiProcess) -> None:
    who = sign_in(portal)
    header, _, signature = token_for(portal, who).split(".")
    other = crafted(portal, portal_keys(portal)[0], who, role="owner")
    token = f"{header}.{other.split('.')[1]}.{signature}"

    detail = refused(stacks_at(stack, token), token)

    assert detail == "SSO token refused: the signature does not match"


def test_a_token_from_another_issuer_is_refused(portal: ApiProcess, stack: ApiProcess) -> None:
    who = sign_in(portal)
    token_for(portal, who)
    token = crafted(portal, portal_keys(portal)[0], who, iss="http://127.0.0.1:1")

    detail = refused(stacks_at(stack, token), token)

    assert detail == (f"SSO token refused: it was not issued by the trusted portal {portal.url}")


def test_a_retired_key_is_accepted_in_its_grace_period_and_refused_after(
    portal: ApiProcess, stack: ApiProcess
) -> None:
    who = sign_in(portal)
    before = token_for(portal, who)
    old_kid = jwt.decode(
        before,
        KeySet.import_key_set(httpx.get(f"{portal.url}/.well-known/jwks.json").json()),
        algorithms=[ALGORITHM],
    ).header["kid"]
    admin = {"Authorization": f"Bearer {portal.admin_token}"}

    rotated = httpx.post(f"{portal.url}/v1/sso/keys/rotate", headers=admin)

    assert rotated.status_code == 200, rotated.text
    states = {k["kid"]: k["state"] for k in rotated.json()["data"]}
    assert states[old_kid] == "retired" and list(states.values()).count("active") == 1
    after = token_for(portal, who)
    assert (
        jwt.decode(
            after,
            KeySet.import_key_set(httpx.get(f"{portal.url}/.well-known/jwks.json").json()),
            algorithms=[ALGORITHM],
        ).header["kid"]
        != old_kid
    )
    # In its grace period the retired key is still published, and its tokens still accepted.
    assert stacks_at(stack, before).status_code == 200
    assert stacks_at(stack, after).status_code == 200

    # The grace period ends (the retirement is moved back in P's database).
    with Session(get_engine(portal.database_url)) as db:
        row = db.get(SigningKey, old_kid)
        assert row is not None
        row.retired_at = utcnow() - timedelta(minutes=GRACE_MINUTES + 1)
        db.add(row)
        db.commit()
    published = httpx.get(f"{portal.url}/.well-known/jwks.json").json()["keys"]

    assert old_kid not in {k["kid"] for k in published}
    assert old_kid not in {k.kid for k in portal_keys(portal)}  # deleted, private half too
    detail = refused(stacks_at(stack, before), before)  # not expired, but its key is gone
    assert detail == (
        "SSO token refused: signed by a key the trusted portal does not publish (unknown, "
        "or retired longer than its grace period)"
    )
    assert stacks_at(stack, after).status_code == 200


# ---- the bridge ------------------------------------------------------------------------------


def test_the_bridge_reaches_the_stack_as_the_caller(portal: ApiProcess, stack: ApiProcess) -> None:
    who = sign_in(portal)

    answer = httpx.get(
        f"{portal.url}/v1/tools/stack/v1/stacks", headers={"Authorization": f"Bearer {who.session}"}
    )

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"data": [], "count": 0}
    with Session(get_engine(stack.database_url)) as db:
        user = db.get(User, who.user_id)
        assert user is not None and user.organisation_id == who.org_id


def test_the_bridge_sends_user_and_org_ids_and_a_token_but_not_the_callers_secrets(
    portal: ApiProcess, echo: Echo
) -> None:
    who = sign_in(portal)
    echo.seen.clear()

    answer = httpx.post(
        f"{portal.url}/v1/tools/echo/hooks/run?dry=1",
        content=b'{"x": 1}',
        headers={
            "Authorization": f"Bearer {who.session}",
            "Cookie": "__Host-kombify_session=other; theme=dark",
            "Content-Type": "application/json",
            "X-Request-ID": "req-123",
        },
    )

    assert answer.status_code == 207, answer.text
    assert answer.json() == {"echo": "/hooks/run?dry=1"}
    assert "set-cookie" not in answer.headers  # a tool's cookies never reach the portal's domain
    (seen,) = echo.seen
    headers = seen["headers"]
    assert (seen["method"], seen["path"], seen["body"]) == ("POST", "/hooks/run?dry=1", '{"x": 1}')
    assert headers["x-user-id"] == who.user_id
    assert headers["x-org-id"] == who.org_id
    assert headers["x-request-id"] == "req-123"
    assert "cookie" not in headers
    assert who.session not in json.dumps(headers)
    scheme, token = headers["authorization"].split(" ")
    jwks = KeySet.import_key_set(httpx.get(f"{portal.url}/.well-known/jwks.json").json())
    claims = jwt.decode(token, jwks, algorithms=[ALGORITHM]).claims
    assert scheme == "Bearer"
    assert (claims["aud"], claims["sub"], claims["org_id"], claims["org_slug"]) == (
        "echo",
        who.user_id,
        who.org_id,
        who.org_slug,
    )
    assert claims["iss"] == portal.url and claims["exp"] - claims["iat"] == 300


def test_the_bridge_names_unknown_and_unreachable_tools(
    portal: ApiProcess, ports: dict[str, int]
) -> None:
    auth = {"Authorization": f"Bearer {sign_in(portal).session}"}

    unknown = httpx.get(f"{portal.url}/v1/tools/nope/x", headers=auth)
    down = httpx.get(f"{portal.url}/v1/tools/down/x", headers=auth)

    assert unknown.status_code == 404
    assert unknown.json()["detail"] == (
        "tool: no tool `nope` here; configured: `stack`, `echo`, `down`"
    )
    assert down.status_code == 502
    assert down.json()["detail"].startswith(
        f"tool `down` did not answer at http://127.0.0.1:{ports['down']} ("
    )


async def test_reachability_reports_each_tool(
    portal: ApiProcess, stack: ApiProcess, echo: Echo, ports: dict[str, int], tmp_path: Path
) -> None:
    settings = Settings(
        home=tmp_path,
        tools=f"stack={stack.url},echo={echo.url},down=http://127.0.0.1:{ports['down']}",
    )

    found = {r.name: (r.ok, r.error) for r in await reachability(settings)}

    assert found == {"stack": (True, None), "echo": (True, None), "down": (False, "ConnectError")}


def test_the_bridge_lets_a_viewer_read_but_not_change(portal: ApiProcess, echo: Echo) -> None:
    auth = {"Authorization": f"Bearer {sign_in(portal, role='viewer').session}"}
    echo.seen.clear()

    read = httpx.get(f"{portal.url}/v1/tools/echo/status", headers=auth)
    change = httpx.post(f"{portal.url}/v1/tools/echo/hooks/run", headers=auth)

    assert read.status_code == 207
    assert change.status_code == 403
    assert change.json()["detail"].startswith("POST on tool `echo` needs the member role")
    assert [seen["method"] for seen in echo.seen] == ["GET"]


def test_the_bridge_forwards_no_dot_segments(portal: ApiProcess, echo: Echo) -> None:
    auth = {"Authorization": f"Bearer {sign_in(portal).session}"}
    echo.seen.clear()

    answer = httpx.get(f"{portal.url}/v1/tools/echo/a/%2e%2e/admin", headers=auth)

    assert answer.status_code == 422
    assert answer.json()["detail"] == "path: `.` and `..` segments are not forwarded to a tool"
    assert echo.seen == []


def test_the_bridge_keeps_an_encoded_question_mark_in_the_path(
    portal: ApiProcess, echo: Echo
) -> None:
    auth = {
        "Authorization": f"Bearer {sign_in(portal).session}".encode(),
        "User-Agent": "caf\u00e9".encode("latin-1"),
    }
    echo.seen.clear()

    answer = httpx.get(f"{portal.url}/v1/tools/echo/a%3Fb/c?d=1", headers=auth)

    assert answer.status_code == 207, answer.text
    (seen,) = echo.seen
    assert seen["path"] == "/a%3Fb/c?d=1"
    assert seen["headers"]["user-agent"] == "caf\u00e9"  # the caller's bytes, as sent
