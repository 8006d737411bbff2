"""Viewers read and change nothing: every mutating route of the OpenAPI document refuses them.

The document is walked, so a route added later is covered without being listed here. The
routes a signed-in person calls about themself (their session, password, memberships) are
the only exemptions, each named below with why.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.accounts import Installation, installation
from tests.support.openapi_walk import MUTATING, Operation, body_for, operations, url
from tests.support.ports import free_port
from tests.support.tenants import Tenant, read_key, seed

PROBLEM = "application/problem+json"

# Routes that need no credential at all: anyone may call them, a viewer too.
ANONYMOUS = {
    ("post", "/v1/auth/signup"),  # governed by KOMBIFY_SIGNUP, not by a role
    ("post", "/v1/auth/login"),
    ("post", "/v1/auth/password-reset"),  # the mailed token is the credential
    ("post", "/v1/auth/password-reset/confirm"),
    ("post", "/v1/auth/verify-email"),
    ("post", "/v1/auth/oidc/cli-exchange"),  # the CLI's one-time code is the credential
}
# Routes about the signed-in person themself, whatever their role in any organisation.
ABOUT_ONESELF = {
    ("post", "/v1/auth/logout"),  # ending one's own session
    ("post", "/v1/auth/reauth"),  # proving one's own password before a sensitive change
    ("post", "/v1/auth/password"),  # one's own password
    ("delete", "/v1/auth/sessions"),  # ending one's other sessions
    ("delete", "/v1/auth/sessions/{session_id}"),  # ending one of one's sessions
    ("post", "/v1/orgs"),  # a new organisation of one's own (the caller becomes its owner)
    ("post", "/v1/invitations/accept"),  # joining an organisation one was invited to
    ("post", "/v1/orgs/{org}/leave"),  # leaving an organisation one belongs to
    ("patch", "/v1/me"),  # one's own name and email address
    ("post", "/v1/auth/verify-email/resend"),  # a new token mailed to one's own address
    ("post", "/v1/auth/mfa/totp"),  # one's own second factor
    ("post", "/v1/auth/mfa/totp/confirm"),
    ("delete", "/v1/auth/mfa/totp"),
    ("post", "/v1/auth/mfa/recovery-codes"),
    ("post", "/v1/sso/tokens"),  # a token for a tool, carrying the caller's own role
}
# An API key acts for a script in one organisation, never as the person: a `read` key is
# refused on every mutating route but the anonymous ones. It may ask for an SSO token: the
# token carries the key's capped role (viewer), so a tool sees a viewer.
KEY_EXEMPT = ANONYMOUS | {("post", "/v1/sso/tokens")}


@pytest.fixture
def inst(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Installation]:
    # Nothing answers at Docker's or Temporal's address: a route that got past the role check
    # and reached either would answer 502/503, never the 403 expected.
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")
    with installation(tmp_path, database_url) as made:
        yield made


@pytest.fixture
def acme(inst: Installation) -> Tenant:
    return seed(inst, "acme", roles=("owner", "viewer"))


def _document(inst: Installation) -> list[Operation]:
    return list(operations(inst.client().get("/openapi.json").json()))


def _mutating(ops: list[Operation], exempt: set[tuple[str, str]]) -> list[Operation]:
    return [op for op in ops if op.method in MUTATING and op.key not in exempt]


def _assert_refused(client: TestClient, op: Operation, tenant: Tenant) -> None:
    body = body_for(op, stack=tenant.stack, simulation=tenant.simulation)
    response = client.request(op.method.upper(), url(op, tenant.path_value), json=body)
    assert response.status_code == 403, f"{op}: {response.status_code} {response.text}"
    assert response.headers["content-type"] == PROBLEM, op
    problem = response.json()
    assert problem["status"] == 403 and problem["detail"], op


def test_the_exemptions_name_routes_that_exist(inst: Installation) -> None:
    keys = {op.key for op in _document(inst)}

    assert (ANONYMOUS | ABOUT_ONESELF) - keys == set()


def test_every_mutating_route_refuses_a_viewer_session(inst: Installation, acme: Tenant) -> None:
    viewer = inst.bearer(acme.email("viewer"))
    walked = _mutating(_document(inst), ANONYMOUS | ABOUT_ONESELF)

    for op in walked:
        _assert_refused(viewer, op, acme)

    assert len(walked) >= 20
    # The viewer's refusals changed nothing: the organisation's stack is still there.
    assert viewer.get(f"/v1/stacks/{acme.stack}").status_code == 200


def test_every_mutating_route_refuses_a_read_key_of_an_owner(
    inst: Installation, acme: Tenant
) -> None:
    key = inst.client(Authorization=f"Bearer {read_key(inst, acme.slug)}")
    walked = _mutating(_document(inst), KEY_EXEMPT)

    for op in walked:
        _assert_refused(key, op, acme)

    assert len(walked) >= 30
    assert key.get(f"/v1/stacks/{acme.stack}").status_code == 200


def test_a_viewer_reads_every_route_without_a_server_error(
    inst: Installation, acme: Tenant
) -> None:
    viewer = inst.bearer(acme.email("viewer"))

    for op in _document(inst):
        if op.method != "get":
            continue
        response = viewer.get(url(op, acme.path_value))
        # Temporal and Docker do not answer here: a read that asks them says so (502/503).
        assert response.status_code not in (500, 501), f"{op}: {response.text}"
        assert response.status_code not in (401, 403) or op.key in ADMIN_READS, (
            f"{op}: {response.status_code} {response.text}"
        )


# Reads that need more than the viewer role (they show other people's data).
ADMIN_READS = {
    ("get", "/v1/orgs/{org}/invitations"),
    ("get", "/v1/orgs/{org}/activity"),
    ("get", "/v1/orgs/{org}/billing/invoices"),  # amounts paid: members, not viewers
    ("get", "/v1/sso/keys"),  # the installation's signing keys: owners of `local`
}
