"""The Stack side of SSO in detail: the key cache against a loopback JWKS server, every check
a token goes through, and how a verified token is mapped to local rows."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import OctKey, OKPKey
from sqlmodel import Session
from starlette.requests import Request

from kombify.accounts import orgs, users
from kombify.accounts.principal import Principal
from kombify.admin_token import Unauthorized
from kombify.api.app import create_app
from kombify.db.account_tables import Credential
from kombify.db.engine import get_engine
from kombify.db.migrate import upgrade
from kombify.errors import ServiceUnavailableError
from kombify.identity.jwks_cache import JwksCache
from kombify.identity.sso_verifier import SsoVerifier
from kombify.settings import Settings
from tests.support.ports import free_port

ALG = "Ed25519"


@dataclass
class Issuer:
    """A loopback server publishing a JWKS the test changes at will; it counts fetches."""

    url: str
    keys: dict[str, OKPKey] = field(default_factory=dict)
    hits: int = 0
    status: int = 200
    raw: bytes | None = None

    def add(self) -> OKPKey:
        key = OKPKey.generate_key("Ed25519", parameters={"kid": secrets.token_hex(4)})
        self.keys[key.kid or ""] = key
        return key

    def document(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps({"keys": [k.as_dict(private=False) for k in self.keys.values()]}).encode()


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    state = Issuer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits += 1
            data = state.document()
            self.send_response(state.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            del format, args

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---- the key cache ---------------------------------------------------------------------------


def test_keys_are_fetched_once_while_fresh(issuer: Issuer) -> None:
    key = issuer.add()
    cache = JwksCache(issuer.url, max_age=300, clock=Clock())

    assert cache.key(key.kid or "") is not None
    assert cache.key(key.kid or "") is not None
    assert issuer.hits == 1


def test_an_unknown_key_id_is_fetched_at_once_but_not_more_than_every_10_s(
    issuer: Issuer,
) -> None:
    issuer.add()
    clock = Clock()
    cache = JwksCache(issuer.url, max_age=300, clock=clock)
    assert cache.key("missing") is None
    new = issuer.add()

    assert cache.key(new.kid or "") is None  # just fetched: made-up kids cannot hammer the issuer
    assert issuer.hits == 1
    clock.now += 10

    assert cache.key(new.kid or "") is not None
    assert issuer.hits == 2


def test_a_key_the_issuer_removed_is_dropped_when_the_cache_ages(issuer: Issuer) -> None:
    key = issuer.add()
    clock = Clock()
    cache = JwksCache(issuer.url, max_age=300, clock=clock)
    assert cache.key(key.kid or "") is not None
    del issuer.keys[key.kid or ""]

    clock.now += 299
    assert cache.key(key.kid or "") is not None
    clock.now += 1
    assert cache.key(key.kid or "") is None


def test_an_unreachable_issuer_is_a_clear_503() -> None:
    port = free_port()
    cache = JwksCache(f"http://127.0.0.1:{port}/", max_age=300)

    with pytest.raises(ServiceUnavailableError) as caught:
        cache.key("any")

    assert caught.value.message == (
        f"cannot fetch the SSO issuer's keys from http://127.0.0.1:{port}/.well-known/jwks.json "
        "(ConnectError, timeout 5 s); try again later"
    )


@pytest.mark.parametrize(
    ("status", "raw", "tail"),
    [
        (500, b"{}", "are not available (HTTP 500); try again later"),
        (200, b"hello", "are not a JSON Web Key Set"),
        (200, b'{"keys": [{"kty": "nope"}]}', "are not a JSON Web Key Set"),
    ],
)
def test_a_broken_jwks_is_a_clear_503(issuer: Issuer, status: int, raw: bytes, tail: str) -> None:
    issuer.status, issuer.raw = status, raw

    with pytest.raises(ServiceUnavailableError) as caught:
        JwksCache(issuer.url, max_age=300).key("any")

    assert caught.value.message == (
        f"the SSO issuer's keys at {issuer.url}/.well-known/jwks.json {tail}"
    )


def test_a_stack_whose_portal_is_down_answers_503(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    settings = Settings(
        home=tmp_path,
        sso_trusted_issuer=down,
        sso_audience="stack",
        temporal_address=f"127.0.0.1:{free_port()}",
    )
    key = OKPKey.generate_key("Ed25519", parameters={"kid": "k1"})
    token = jwt.encode({"alg": ALG, "kid": "k1"}, {"sub": "x"}, key, algorithms=[ALG])

    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        answer = client.get("/v1/stacks", headers={"Authorization": f"Bearer {token}"})

    assert answer.status_code == 503
    assert answer.json()["detail"].startswith(
        f"cannot fetch the SSO issuer's keys from {down}/.well-known/jwks.json (ConnectError"
    )


# ---- every check -----------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Session]:
    url = f"sqlite:///{tmp_path / 'stack.db'}"
    upgrade(url)
    with Session(get_engine(url)) as session:
        yield session


@pytest.fixture
def verifier(issuer: Issuer) -> SsoVerifier:
    return SsoVerifier(
        issuer="https://portal.example",
        audience="stack",
        keys=JwksCache(issuer.url, max_age=0),
    )


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": "https://portal.example",
        "aud": "stack",
        "sub": "u" * 32,
        "email": "ada@example.org",
        "name": "Ada",
        "org_id": "o" * 32,
        "org_slug": "team",
        "role": "member",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": "j1",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(key: OKPKey, **changes: Any) -> str:
    return jwt.encode({"alg": ALG, "kid": key.kid}, _claims(**changes), key, algorithms=[ALG])


def _request(**headers: str) -> Request:
    raw = [(k.lower().replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "GET", "path": "/v1/stacks", "headers": raw})


def _refusal(verifier: SsoVerifier, db: Session, token: str, **headers: str) -> str:
    with pytest.raises(Unauthorized) as caught:
        verifier(db, _request(**headers), token)
    assert caught.value.status == 401
    return caught.value.message.removeprefix("SSO token refused: ")


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_valid_token_becomes_a_principal_in_the_same_organisation(
    issuer: Issuer, verifier: SsoVerifier, db: Session
) -> None:
    principal = verifier(db, _request(), _sign(issuer.add()))

    assert isinstance(principal, Principal) and principal.user is not None
    assert (principal.user.id, principal.user.email, principal.user.name) == (
        "u" * 32,
        "ada@example.org",
        "Ada",
    )
    assert (principal.organisation.id, principal.organisation.slug) == ("o" * 32, "team")
    assert (principal.role, principal.via) == ("member", "sso")
    assert principal.on_behalf_of == "sso https://portal.example"


def test_the_portal_decides_the_role_and_the_slug_each_time(
    issuer: Issuer, verifier: SsoVerifier, db: Session
) -> None:
    key = issuer.add()
    verifier(db, _request(), _sign(key))

    principal = verifier(db, _request(), _sign(key, role="viewer", org_slug="renamed"))

    assert principal is not None
    assert (principal.role, principal.organisation.slug) == ("viewer", "renamed")
    member = orgs.membership(db, "o" * 32, "u" * 32)
    assert member is not None and member.role == "viewer"


def test_text_that_is_no_jws_is_left_to_the_other_credentials(
    verifier: SsoVerifier, db: Session
) -> None:
    assert verifier(db, _request(), "not.a.jwt") is None


def test_alg_none_is_refused(verifier: SsoVerifier, db: Session) -> None:
    token = f"{_b64({'alg': 'none', 'kid': 'k'})}.{_b64(_claims())}."

    assert _refusal(verifier, db, token) == "the algorithm is not one of Ed25519"


def test_a_shared_secret_algorithm_is_refused(verifier: SsoVerifier, db: Session) -> None:
    key = OctKey.generate_key(256)
    token = jwt.encode({"alg": "HS256", "kid": "k"}, _claims(), key, algorithms=["HS256"])

    assert _refusal(verifier, db, token) == "the algorithm is not one of Ed25519"


def test_a_token_without_kid_is_refused(issuer: Issuer, verifier: SsoVerifier, db: Session) -> None:
    key = issuer.add()
    token = jwt.encode({"alg": ALG}, _claims(), key, algorithms=[ALG])

    assert _refusal(verifier, db, token) == "the header names no key (`kid`)"


def test_a_key_the_issuer_does_not_publish_is_refused(verifier: SsoVerifier, db: Session) -> None:
    stranger = OKPKey.generate_key("Ed25519", parameters={"kid": "stranger"})

    assert _refusal(verifier, db, _sign(stranger)) == (
        "signed by a key the trusted portal does not publish (unknown, or retired longer than "
        "its grace period)"
    )


def test_a_signature_by_another_key_under_a_published_kid_is_refused(
    issuer: Issuer, verifier: SsoVerifier, db: Session
) -> None:
    published = issuer.add()
    impostor = OKPKey.generate_key("Ed25519", parameters={"kid": published.kid})

    assert _refusal(verifier, db, _sign(impostor)) == "the signature does not match"


@dataclass(frozen=True)
class _FromNow:
    """A time given relative to when the test runs (not to when the suite was collected)."""

    seconds: int


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"org_id": None}, "the claim `org_id` is missing"),
        ({"exp": None}, "the claim `exp` is missing"),
        ({"aud": ["other", "more"]}, "it is for another tool, not `stack`"),
        (
            {"iss": "https://evil.example"},
            "it was not issued by the trusted portal https://portal.example",
        ),
        ({"nbf": _FromNow(120)}, "it is not valid yet (`nbf` or `iat` in the future)"),
        ({"exp": _FromNow(-60)}, "it expired; get a new one from the portal"),
        ({"role": "superuser"}, "the claim `role` is not one of viewer, member, admin, owner"),
        ({"email": ""}, "the claim `email` is empty or not valid"),
        ({"org_slug": 7}, "the claim `org_slug` is not a non-empty string"),
        ({"iat": _FromNow(120)}, "it is not valid yet (`nbf` or `iat` in the future)"),
    ],
)
def test_each_claim_is_checked(
    issuer: Issuer, verifier: SsoVerifier, db: Session, changes: dict[str, Any], why: str
) -> None:
    # Times are relative to when the test runs, not to when the suite was collected.
    now = int(time.time())
    changes = {k: now + v.seconds if isinstance(v, _FromNow) else v for k, v in changes.items()}
    assert _refusal(verifier, db, _sign(issuer.add(), **changes)) == why


def test_a_small_clock_skew_is_tolerated(
    issuer: Issuer, verifier: SsoVerifier, db: Session
) -> None:
    now = int(time.time())
    token = _sign(issuer.add(), exp=now - 10, nbf=now + 10)

    assert verifier(db, _request(), token) is not None


# ---- mapping refusals ------------------------------------------------------------------------


def test_another_organisation_header_is_refused(
    issuer: Issuer, verifier: SsoVerifier, db: Session
) -> None:
    why = _refusal(verifier, db, _sign(issuer.add()), x_kombify_org="elsewhere")

    assert why == "it is for one organisation only; drop the X-Kombify-Org header"


def test_a_slug_taken_by_a_local_organisation_is_refused(
    issuer: Issuer, verifier: SsoVerifier, db: Session
) -> None:
    orgs.create(db, slug="team")

    assert _refusal(verifier, db, _sign(issuer.add())) == (
        "its organisation's slug belongs to another organisation on this instance; rename one "
        "of them"
    )


def test_an_email_of_a_local_account_is_refused(
    issuer: Issuer, verifier: SsoVerifier, db: Session
) -> None:
    home = orgs.create(db, slug="home")
    users.create(db, email="ada@example.org", organisation=home, role="owner")

    assert _refusal(verifier, db, _sign(issuer.add())) == (
        "its email belongs to another account on this instance"
    )


def test_an_account_disabled_here_is_refused(
    issuer: Issuer, verifier: SsoVerifier, db: Session
) -> None:
    key = issuer.add()
    verifier(db, _request(), _sign(key))
    credential = db.get(Credential, "u" * 32)
    assert credential is not None
    credential.disabled = True
    db.add(credential)
    db.commit()

    assert _refusal(verifier, db, _sign(key)) == "this account is disabled on this instance"
