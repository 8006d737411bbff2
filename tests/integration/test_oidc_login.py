"""Login with OpenID Connect and GitHub, browser-free, against real provider processes.

The real ``oidc-provider-mock`` process signs the happy paths and the state/nonce/replay
refusals; a tiny provider of our own (tests/support/oidc_servers.py) signs the ID tokens the
mock cannot be made to produce; a stand-in serves GitHub's documented OAuth endpoints.
Redirects are followed by hand, as a browser would.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from kombify.accounts import orgs, users
from kombify.api.app import create_app
from kombify.db.account_tables import Activity, ExternalIdentity, Membership, OneTimeToken
from kombify.db.engine import get_engine
from kombify.db.models import Organisation, User, utcnow
from kombify.db.oidc_tables import OidcLoginState
from kombify.settings import Settings
from tests.support.oidc_servers import (
    GitHubStandIn,
    GitHubUser,
    TinyProvider,
    TinyUser,
    running_mock_provider,
)
from tests.support.ports import free_port

PUBLIC_URL = "http://testserver"
CLIENT_ID = "kombify-test"
SECRET = "client-secret-never-shown"


@pytest.fixture(scope="module")
def mock_issuer() -> Iterator[str]:
    with running_mock_provider() as issuer:
        yield issuer


@pytest.fixture(scope="module")
def tiny() -> Iterator[TinyProvider]:
    server = TinyProvider(client_id=CLIENT_ID, client_secret=SECRET)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def github() -> Iterator[GitHubStandIn]:
    server = GitHubStandIn(client_id="gh-client", client_secret=SECRET)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def make_client(
    database_url: str, tmp_path: Path, mock_issuer: str, tiny: TinyProvider, github: GitHubStandIn
) -> Iterator[Callable[..., TestClient]]:
    providers = {
        "mock": {"issuer": mock_issuer, "client_id": CLIENT_ID, "client_secret": SECRET},
        "tiny": {"issuer": tiny.url, "client_id": CLIENT_ID, "client_secret": SECRET},
        # The same provider under an issuer one character off its discovery document's.
        "tiny-slash": {"issuer": tiny.url + "/", "client_id": CLIENT_ID, "client_secret": SECRET},
        "github": {
            "kind": "github",
            "client_id": "gh-client",
            "client_secret": SECRET,
            "api_base": github.url,
            "authorize_url": f"{github.url}/login/oauth/authorize",
            "token_url": f"{github.url}/login/oauth/access_token",
        },
    }
    tiny.next = TinyUser(claims={"email": "tiny@example.org", "email_verified": True})
    github.next = GitHubUser()
    clients: list[TestClient] = []

    def make(signup: str = "open") -> TestClient:
        settings = Settings(
            home=tmp_path,
            database_url=database_url,
            temporal_address=f"127.0.0.1:{free_port()}",
            public_url=PUBLIC_URL,
            signup=signup,
            oidc_providers=json.dumps(providers),
        )
        client = TestClient(create_app(settings), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def db(client: TestClient, database_url: str) -> Iterator[Session]:
    with Session(get_engine(database_url)) as session:
        yield session


def _mock_user(issuer: str, sub: str, **claims: Any) -> None:
    claims.setdefault("email", f"{sub}@example.org")
    claims.setdefault("email_verified", True)
    assert httpx.put(f"{issuer}/users/{sub}", json=claims).status_code == 204


def _start(client: TestClient, provider: str, **params: str) -> str:
    response = client.get(f"/v1/auth/oidc/{provider}/login", params=params, follow_redirects=False)
    assert response.status_code == 302, response.text
    return response.headers["location"]


def _consent_at_mock(authorize_url: str, sub: str) -> str:
    """POST the mock's authorization form as the user would; the callback URL it sends back."""
    response = httpx.post(authorize_url, data={"sub": sub}, follow_redirects=False)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(f"{PUBLIC_URL}/v1/auth/oidc/mock/callback?")
    return location


def _follow(authorize_url: str) -> str:
    """The tiny provider and the GitHub stand-in answer at once with the callback URL."""
    response = httpx.get(authorize_url, follow_redirects=False)
    assert response.status_code == 302, response.text
    return response.headers["location"]


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


def _cookies(response: httpx.Response) -> dict[str, str]:
    return {c.split("=", 1)[0]: c for c in response.headers.get_list("set-cookie")}


def _session_token(response: httpx.Response) -> str:
    cookie = _cookies(response)["__Host-kombify_session"]
    return cookie.split("=", 1)[1].split(";", 1)[0]


def _refused(response: httpx.Response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    detail: str = response.json()["detail"]
    for word in words:
        assert word in detail, detail
    assert SECRET not in response.text
    return detail


def _login_with_mock(client: TestClient, issuer: str, sub: str) -> httpx.Response:
    callback = _consent_at_mock(_start(client, "mock"), sub)
    return client.get(callback, follow_redirects=False)


def _verified_user(db: Session, email: str, *, verified: bool) -> User:
    org = orgs.create(db, slug=orgs.personal_slug(db, email))
    return users.create(
        db,
        email=email,
        organisation=org,
        role="owner",
        password="a long enough password 1",
        email_verified=verified,
    )


# ---- discovery and the authorization request -----------------------------------------------------


def test_providers_are_listed_by_name_only(client: TestClient) -> None:
    response = client.get("/v1/auth/oidc/providers")

    assert response.json() == {"data": ["github", "mock", "tiny", "tiny-slash"], "count": 4}
    assert SECRET not in response.text


def test_login_sends_state_nonce_pkce_s256_and_the_exact_redirect_uri(
    client: TestClient, mock_issuer: str
) -> None:
    url = _start(client, "mock")

    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{mock_issuer}/oauth2/authorize"
    assert query["redirect_uri"] == f"{PUBLIC_URL}/v1/auth/oidc/mock/callback"
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["scope"] == "openid email profile"
    assert query["code_challenge_method"] == "S256"
    assert len(query["state"]) >= 40 and len(query["nonce"]) >= 40
    assert len(query["code_challenge"]) == 43
    assert _start(client, "mock") != url  # fresh values every login


def test_an_unknown_provider_is_404_naming_the_configured_ones(client: TestClient) -> None:
    detail = _refused(client.get("/v1/auth/oidc/okta/login", follow_redirects=False), 404)
    assert detail == (
        "provider: no login provider `okta`; configured: `github`, `mock`, `tiny`, `tiny-slash`"
    )


def test_a_discovery_document_naming_another_issuer_is_refused(
    client: TestClient, tiny: TinyProvider
) -> None:
    response = client.get("/v1/auth/oidc/tiny-slash/login", follow_redirects=False)

    detail = _refused(response, 502, "must be identical")
    assert detail == (
        f"tiny-slash: the discovery document names issuer `{tiny.url}`, the settings "
        f"`{tiny.url}/`; they must be identical (set issuer to the provider's exact value)"
    )


# ---- accounts: created, linked, refused ----------------------------------------------------------


def test_a_new_user_is_created_with_open_signup_and_signed_in(
    client: TestClient, db: Session, mock_issuer: str
) -> None:
    _mock_user(mock_issuer, "ada", name="Ada Lovelace")

    response = _login_with_mock(client, mock_issuer, "ada")

    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"{PUBLIC_URL}/v1/me"
    cookies = _cookies(response)
    session, csrf = cookies["__Host-kombify_session"], cookies["__Host-kombify_csrf"]
    for cookie in (session, csrf):
        lowered = cookie.lower()
        assert "secure" in lowered and "path=/" in lowered and "samesite=lax" in lowered
        assert "domain=" not in lowered
    assert "httponly" in session.lower() and "httponly" not in csrf.lower()
    user = users.by_email(db, "ada@example.org")
    assert user is not None and user.name == "Ada Lovelace"
    org = db.get(Organisation, user.organisation_id)
    assert org is not None and org.slug.startswith("ada-")
    role = db.exec(select(Membership.role).where(Membership.user_id == user.id)).one()
    assert role == "owner"
    link = db.exec(select(ExternalIdentity).where(ExternalIdentity.user_id == user.id)).one()
    assert (link.provider, link.subject) == ("mock", "ada")
    token = _session_token(response)
    assert client.get("/v1/stacks", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    entry = db.exec(select(Activity).where(Activity.user_id == user.id)).one()
    assert (entry.via, entry.action, entry.outcome) == ("oidc", "login via mock", "ok")

    again = _login_with_mock(client, mock_issuer, "ada")
    assert again.status_code == 303
    assert _session_token(again) != token  # a new session id every login
    assert len(db.exec(select(User).where(User.email == "ada@example.org")).all()) == 1


def test_a_verified_existing_user_is_linked(
    client: TestClient, db: Session, mock_issuer: str
) -> None:
    existing = _verified_user(db, "grace@example.org", verified=True)
    _mock_user(mock_issuer, "grace-at-idp", email="grace@example.org")

    response = _login_with_mock(client, mock_issuer, "grace-at-idp")

    assert response.status_code == 303, response.text
    link = db.exec(select(ExternalIdentity).where(ExternalIdentity.subject == "grace-at-idp")).one()
    assert link.user_id == existing.id
    assert db.exec(select(User)).all() == [existing]


def test_an_unverified_existing_user_is_refused_not_linked(
    client: TestClient, db: Session, mock_issuer: str
) -> None:
    _verified_user(db, "mallory-target@example.org", verified=False)
    _mock_user(mock_issuer, "squatter", email="mallory-target@example.org")

    response = _login_with_mock(client, mock_issuer, "squatter")

    _refused(response, 401, "`mallory-target@example.org` exists", "never verified")
    assert "__Host-kombify_session" not in _cookies(response)
    assert db.exec(select(ExternalIdentity)).all() == []


def test_an_email_the_provider_did_not_verify_is_refused(
    client: TestClient, db: Session, mock_issuer: str
) -> None:
    _mock_user(mock_issuer, "unverified", email_verified=False)

    _refused(_login_with_mock(client, mock_issuer, "unverified"), 401, "does not say", "verified")
    assert users.by_email(db, "unverified@example.org") is None


def test_without_open_signup_a_stranger_is_told_to_ask_for_an_invitation(
    make_client: Callable[..., TestClient], database_url: str, mock_issuer: str
) -> None:
    client = make_client(signup="invite")
    _mock_user(mock_issuer, "stranger")

    _refused(
        _login_with_mock(client, mock_issuer, "stranger"), 401, "ask an owner for an invitation"
    )
    with Session(get_engine(database_url)) as db:
        assert users.by_email(db, "stranger@example.org") is None


# ---- state, nonce, replay ------------------------------------------------------------------------


def test_a_replayed_callback_is_refused(client: TestClient, mock_issuer: str) -> None:
    _mock_user(mock_issuer, "replay")
    callback = _consent_at_mock(_start(client, "mock"), "replay")
    assert client.get(callback, follow_redirects=False).status_code == 303

    second = client.get(callback, follow_redirects=False)

    _refused(second, 401, "state: unknown, already used or expired")
    assert "__Host-kombify_session" not in _cookies(second)


def test_a_used_code_under_a_fresh_state_is_refused_by_the_provider(
    client: TestClient, mock_issuer: str
) -> None:
    _mock_user(mock_issuer, "replay-code")
    first = _consent_at_mock(_start(client, "mock"), "replay-code")
    assert client.get(first, follow_redirects=False).status_code == 303
    # An attacker who saw the first callback URL starts a login of their own and sends the
    # used code with their fresh state: it reaches the provider, which refuses it.
    fresh_state = parse_qs(urlsplit(_start(client, "mock")).query)["state"][0]

    replayed = client.get(_with_query(first, state=fresh_state), follow_redirects=False)

    _refused(replayed, 401, "mock refused the authorization code (invalid_grant)")
    assert "__Host-kombify_session" not in _cookies(replayed)


def test_a_code_is_bound_to_its_own_logins_pkce_verifier(
    client: TestClient, tiny: TinyProvider
) -> None:
    # A code never used, but issued to another login (e.g. stolen from its callback URL):
    # sent with this login's state, kombify sends this login's verifier, and the provider
    # finds it does not match the challenge the code was issued for.
    stolen = _follow(_start(client, "tiny"))
    mine = _follow(_start(client, "tiny"))
    mine_state = parse_qs(urlsplit(mine).query)["state"][0]

    injected = client.get(_with_query(stolen, state=mine_state), follow_redirects=False)

    _refused(injected, 401, "tiny refused the authorization code (invalid_grant)")


def test_a_wrong_state_is_refused(client: TestClient, mock_issuer: str) -> None:
    _mock_user(mock_issuer, "wrongstate")
    callback = _consent_at_mock(_start(client, "mock"), "wrongstate")

    forged = client.get(_with_query(callback, state="forged-state-value"), follow_redirects=False)

    _refused(forged, 401, "state: unknown, already used or expired")
    assert "__Host-kombify_session" not in _cookies(forged)


def test_an_expired_state_is_refused(client: TestClient, db: Session, tiny: TinyProvider) -> None:
    callback = _follow(_start(client, "tiny"))
    row = db.exec(select(OidcLoginState)).one()
    row.expires_at = utcnow() - timedelta(seconds=1)  # ten minutes later
    db.add(row)
    db.commit()

    _refused(
        client.get(callback, follow_redirects=False), 401, "state: unknown, already used or expired"
    )


def test_a_state_of_another_provider_is_refused(client: TestClient, tiny: TinyProvider) -> None:
    callback = _follow(_start(client, "tiny"))
    moved = callback.replace("/oidc/tiny/", "/oidc/mock/")

    _refused(client.get(moved, follow_redirects=False), 401, "state: unknown")


def test_a_nonce_mismatch_is_refused(client: TestClient, mock_issuer: str) -> None:
    _mock_user(mock_issuer, "nonce")
    # The ID token carries another nonce than this login stored (an injected or replayed token).
    authorize = _with_query(_start(client, "mock"), nonce="not-the-login-nonce")

    response = client.get(_consent_at_mock(authorize, "nonce"), follow_redirects=False)

    _refused(response, 401, "does not repeat this login's nonce")


def test_the_providers_error_answer_is_refused_and_uses_up_the_state(
    client: TestClient, tiny: TinyProvider
) -> None:
    callback = _follow(_start(client, "tiny"))
    denied = _with_query(callback, error="access_denied", code="")

    _refused(client.get(denied, follow_redirects=False), 401, "did not sign you in (access_denied)")
    _refused(client.get(callback, follow_redirects=False), 401, "state: unknown")


# ---- the ID token --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("tampered", "bad signature"),
        ("unknown-key", "bad signature"),
        ("wrong-aud", "meant for another client than kombify's `kombify-test`"),
        ("expired", "has expired"),
        ("wrong-iss", "another issuer than"),
        ("wrong-nonce", "does not repeat this login's nonce"),
    ],
)
def test_a_bad_id_token_is_refused(
    client: TestClient, db: Session, tiny: TinyProvider, fault: str, words: str
) -> None:
    tiny.next = TinyUser(claims={"email": "tiny@example.org", "email_verified": True}, fault=fault)

    response = client.get(_follow(_start(client, "tiny")), follow_redirects=False)

    _refused(response, 401, "tiny's ID token", words)
    assert users.by_email(db, "tiny@example.org") is None
    assert users.by_email(db, "attacker@example.org") is None


def test_the_tiny_provider_signs_in_when_nothing_is_wrong(
    client: TestClient, db: Session, tiny: TinyProvider
) -> None:
    # The same provider as the refusals above: they fail for their fault alone. It also refuses
    # a token request whose PKCE verifier does not match the challenge.
    response = client.get(_follow(_start(client, "tiny")), follow_redirects=False)

    assert response.status_code == 303, response.text
    assert users.by_email(db, "tiny@example.org") is not None


# ---- GitHub --------------------------------------------------------------------------------------


def test_github_login_creates_the_user_from_the_primary_verified_email(
    client: TestClient, db: Session, github: GitHubStandIn
) -> None:
    github.next = GitHubUser(
        emails=[
            {"email": "old@example.org", "primary": False, "verified": True},
            {"email": "Octo@Example.org", "primary": True, "verified": True},
        ]
    )
    authorize = _start(client, "github")
    assert authorize.startswith(f"{github.url}/login/oauth/authorize?")

    response = client.get(_follow(authorize), follow_redirects=False)

    assert response.status_code == 303, response.text
    user = users.by_email(db, "octo@example.org")
    assert user is not None and user.name == "Octo Cat"
    link = db.exec(select(ExternalIdentity).where(ExternalIdentity.user_id == user.id)).one()
    assert (link.provider, link.subject) == ("github", "4242")


def test_github_login_refuses_an_unverified_primary_email(
    client: TestClient, db: Session, github: GitHubStandIn
) -> None:
    github.next = GitHubUser(
        emails=[{"email": "new@example.org", "primary": True, "verified": False}]
    )

    response = client.get(_follow(_start(client, "github")), follow_redirects=False)

    _refused(response, 401, "github does not say `new@example.org` is verified")
    assert users.by_email(db, "new@example.org") is None


def test_github_replayed_callback_is_refused(client: TestClient, github: GitHubStandIn) -> None:
    callback = _follow(_start(client, "github"))
    assert client.get(callback, follow_redirects=False).status_code == 303

    _refused(client.get(callback, follow_redirects=False), 401, "state: unknown")


# ---- the CLI's loopback login --------------------------------------------------------------------


def test_cli_login_ends_at_the_loopback_with_a_code_traded_once_for_a_session(
    client: TestClient, mock_issuer: str
) -> None:
    _mock_user(mock_issuer, "cli-user")
    loopback = "http://127.0.0.1:53682/callback"
    callback = _consent_at_mock(_start(client, "mock", cli_redirect=loopback), "cli-user")

    back = client.get(callback, follow_redirects=False)

    assert back.status_code == 302, back.text
    assert "__Host-kombify_session" not in _cookies(back)  # the CLI gets its token below
    location = back.headers["location"]
    assert location.startswith(loopback + "?code=kfc_")
    code = parse_qs(urlsplit(location).query)["code"][0]
    exchanged = client.post("/v1/auth/oidc/cli-exchange", json={"code": code})
    assert exchanged.status_code == 200, exchanged.text
    body = exchanged.json()
    assert body["user"]["email"] == "cli-user@example.org"
    assert body["token"].startswith("kfs_") and body["csrf"]
    assert body["mfa_enrolment_required"] is False
    stacks = client.get("/v1/stacks", headers={"Authorization": f"Bearer {body['token']}"})
    assert stacks.status_code == 200

    _refused(client.post("/v1/auth/oidc/cli-exchange", json={"code": code}), 401, "already used")


def test_cli_login_tells_the_loopback_why_it_was_refused(
    client: TestClient, mock_issuer: str
) -> None:
    _mock_user(mock_issuer, "cli-unverified", email_verified=False)
    loopback = "http://[::1]:53682/done"
    callback = _consent_at_mock(_start(client, "mock", cli_redirect=loopback), "cli-unverified")

    back = client.get(callback, follow_redirects=False)

    assert back.status_code == 302
    query = parse_qs(urlsplit(back.headers["location"]).query)
    assert back.headers["location"].startswith(loopback + "?")
    assert query["error"] == ["login-refused"] and "verified" in query["error_description"][0]
    assert "code" not in query


@pytest.mark.parametrize(
    "redirect",
    [
        "http://evil.example.org:8080/cb",
        "http://localhost:8080/cb",
        "https://127.0.0.1:8080/cb",
        "http://127.0.0.1/cb",
        "http://user@127.0.0.1:8080/cb",
        "http://10.0.0.1:8080/cb",
    ],
)
def test_cli_redirect_must_be_a_loopback_address_with_a_port(
    client: TestClient, redirect: str
) -> None:
    response = client.get(
        "/v1/auth/oidc/mock/login", params={"cli_redirect": redirect}, follow_redirects=False
    )

    _refused(response, 400, "cli_redirect: expected http://127.0.0.1:PORT/")


def test_an_expired_cli_code_is_refused(client: TestClient, db: Session, mock_issuer: str) -> None:
    _mock_user(mock_issuer, "slow-cli")
    start = _start(client, "mock", cli_redirect="http://127.0.0.1:53682/cb")
    back = client.get(_consent_at_mock(start, "slow-cli"), follow_redirects=False)
    code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]
    row = db.exec(select(OneTimeToken).where(OneTimeToken.purpose == "cli-login")).one()
    row.expires_at = utcnow() - timedelta(seconds=1)  # two minutes later
    db.add(row)
    db.commit()

    _refused(client.post("/v1/auth/oidc/cli-exchange", json={"code": code}), 401, "expired")


def test_an_unknown_cli_code_is_refused(client: TestClient) -> None:
    _refused(
        client.post("/v1/auth/oidc/cli-exchange", json={"code": "kfc_made-up"}), 401, "unknown"
    )


def test_an_account_with_totp_needs_its_code_for_a_provider_login(
    client: TestClient, db: Session, mock_issuer: str
) -> None:
    user = _verified_user(db, "careful@example.org", verified=True)
    credential = users.credential(db, user.id)
    credential.totp_secret = pyotp.random_base32(32)
    credential.totp_enabled_at = utcnow()
    db.add(credential)
    db.commit()
    _mock_user(mock_issuer, "careful", email="careful@example.org")

    # A browser login cannot ask for the code: refused, no session.
    browser = _login_with_mock(client, mock_issuer, "careful")
    _refused(browser, 403, "has a second factor at kombify")
    assert "__Host-kombify_session" not in _cookies(browser)

    def cli_code() -> str:
        start = _start(client, "mock", cli_redirect="http://127.0.0.1:53682/cb")
        back = client.get(_consent_at_mock(start, "careful"), follow_redirects=False)
        return parse_qs(urlsplit(back.headers["location"]).query)["code"][0]

    without = client.post("/v1/auth/oidc/cli-exchange", json={"code": cli_code()})
    assert without.json()["type"].endswith("/mfa-required")
    _refused(without, 401, "this account has a second factor")

    now = pyotp.TOTP(credential.totp_secret).now()
    exchanged = client.post("/v1/auth/oidc/cli-exchange", json={"code": cli_code(), "totp": now})
    assert exchanged.status_code == 200, exchanged.text
    assert exchanged.json()["user"]["id"] == user.id
