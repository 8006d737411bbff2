"""Rate limits per route class and caller: budgets, headers, 429, and Redis shared by two APIs.

A credential is counted as its principal once the API saw it accepted; its first request,
and every request with a credential the API refused, counts against the client address.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from kombify.api.app import create_app
from kombify.gateway.ratelimit import MemoryLimiter, RedisLimiter
from kombify.settings import Settings
from tests.support.gateway_users import api_key_for, session_for
from tests.support.ports import free_port
from tests.support.redis import INSTALL_HINT, running_redis

PROBLEM = "application/problem+json"


def _settings(home: Path, database_url: str, **extra: object) -> Settings:
    return Settings(
        home=home,
        database_url=database_url,
        temporal_address=f"127.0.0.1:{free_port()}",  # nothing listens: Temporal is absent
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real redis-server of this test's own, on a free loopback port."""
    try:
        with running_redis(tmp_path / "redis") as url:
            yield url
    except RuntimeError as exc:
        if str(exc) == INSTALL_HINT:
            pytest.fail(INSTALL_HINT)
        raise


def _remaining(response: httpx.Response) -> int:
    return int(response.headers["RateLimit-Remaining"])


def _assert_429(response: httpx.Response, limit: int, window: int) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"].endswith("/rate-limited")
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= window + 1
    assert response.headers["RateLimit-Limit"] == str(limit)
    assert response.headers["RateLimit-Remaining"] == "0"
    assert int(response.headers["RateLimit-Reset"]) == retry_after


def test_each_signed_in_user_has_a_budget_of_their_own(database_url: str, tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path, database_url, rate_limits="read=3/60"))
    with TestClient(app) as client:
        assert isinstance(app.state.limiter, MemoryLimiter)
        _, alice = session_for(app, "alice@example.org")
        _, bob = session_for(app, "bob@example.org")
        as_alice = {"Authorization": f"Bearer {alice}"}
        as_bob = {"Authorization": f"Bearer {bob}"}
        # First sight of each session: counted against the address (2 of its 3).
        assert client.get("/v1/stacks", headers=as_alice).status_code == 200
        assert client.get("/v1/stacks", headers=as_bob).status_code == 200

        seen = [client.get("/v1/stacks", headers=as_alice) for _ in range(3)]
        assert [r.status_code for r in seen] == [200, 200, 200]
        assert [_remaining(r) for r in seen] == [2, 1, 0]
        assert all(r.headers["RateLimit-Limit"] == "3" for r in seen)
        _assert_429(client.get("/v1/stacks", headers=as_alice), 3, 60)

        other = client.get("/v1/stacks", headers=as_bob)
        assert other.status_code == 200 and _remaining(other) == 2
        # The session cookie is the same credential: Alice's spent budget, not the address's.
        client.cookies.set("__Host-kombify_session", alice)
        _assert_429(client.get("/v1/stacks"), 3, 60)


def test_made_up_tokens_count_against_the_address(tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path, f"sqlite:///{tmp_path / 'k.db'}", rate_limits="read=2/60"))
    with TestClient(app) as client:
        answers = [
            client.get("/v1/stacks", headers={"Authorization": f"Bearer made-up-{n}"})
            for n in range(3)
        ]
    assert [r.status_code for r in answers[:2]] == [401, 401]
    assert [_remaining(r) for r in answers[:2]] == [1, 0]
    _assert_429(answers[2], 2, 60)
    assert "your address" in answers[2].json()["detail"]


def test_an_api_key_has_its_own_budget_and_the_message_says_so(tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path, f"sqlite:///{tmp_path / 'k.db'}", rate_limits="read=2/60"))
    with TestClient(app) as client:
        _, key = api_key_for(app, "ci@example.org")
        as_key = {"Authorization": f"Bearer {key}"}
        statuses = [client.get("/v1/stacks", headers=as_key).status_code for _ in range(3)]
        refused = client.get("/v1/stacks", headers=as_key)
    assert statuses == [200, 200, 200]  # the first on the address, then 2 on the key
    _assert_429(refused, 2, 60)
    assert refused.json()["detail"] == (
        f"too many read requests from this API key: 2 per 60 s allowed; "
        f"try again in {refused.headers['Retry-After']} s"
    )


def test_route_classes_have_separate_budgets_and_probes_none(tmp_path: Path) -> None:
    app = create_app(
        _settings(
            tmp_path, f"sqlite:///{tmp_path / 'k.db'}", rate_limits="auth=1/60,write=1/60,read=5/60"
        )
    )
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {app.state.admin_token}"
        assert client.get("/v1/stacks").status_code == 200  # the token is known from here on
        login = client.post("/v1/auth/login", json={"email": "a@example.org", "password": "x"})
        assert login.headers["RateLimit-Limit"] == "1"
        refused = client.post("/v1/auth/login", json={})
        _assert_429(refused, 1, 60)
        assert refused.json()["detail"].startswith("too many auth requests from the admin token")

        write = client.post("/v1/stacks", json={"source": "name: x"})
        assert write.headers["RateLimit-Limit"] == "1" and _remaining(write) == 0
        _assert_429(client.delete("/v1/stacks/x"), 1, 60)

        read = client.get("/v1/stacks")
        assert read.status_code == 200 and read.headers["RateLimit-Limit"] == "5"

        for path in ("/healthz", "/docs", "/openapi.json"):
            for _ in range(3):
                response = client.get(path)
                assert response.status_code == 200, path
                assert "RateLimit-Limit" not in response.headers
        # Stripe's webhooks: authenticated by their signature, posted in bursts, not limited
        # (billing is off here: the route answers 404, and never 429).
        for _ in range(3):
            hook = client.post("/v1/billing/webhooks", content=b"{}")
            assert hook.status_code == 404 and "RateLimit-Limit" not in hook.headers


def test_two_api_instances_share_one_budget_in_redis(redis_url: str, tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'k.db'}"
    first = create_app(
        _settings(tmp_path / "a", database, rate_limits="read=4/60", redis_url=redis_url)
    )
    second = create_app(
        _settings(tmp_path / "b", database, rate_limits="read=4/60", redis_url=redis_url)
    )
    with TestClient(first) as one, TestClient(second) as two:
        assert isinstance(first.state.limiter, RedisLimiter)
        _, token = session_for(first, "alice@example.org")
        as_alice = {"Authorization": f"Bearer {token}"}
        # Each instance sees the session once on the shared address budget (2 of its 4) ...
        assert _remaining(one.get("/v1/stacks", headers=as_alice)) == 3
        assert _remaining(two.get("/v1/stacks", headers=as_alice)) == 2
        # ... then both count the user's own budget, in the same Redis.
        alternating = [
            _remaining(client.get("/v1/stacks", headers=as_alice))
            for client in (one, two, one, two)
        ]
        assert alternating == [3, 2, 1, 0]
        _assert_429(one.get("/v1/stacks", headers=as_alice), 4, 60)
        _assert_429(two.get("/v1/stacks", headers=as_alice), 4, 60)
        # Anonymous callers of both instances share the address budget: 2 left, then none.
        assert [_remaining(c.get("/v1/stacks")) for c in (two, one)] == [1, 0]
        _assert_429(one.get("/v1/stacks"), 4, 60)


def test_redis_gone_is_503_naming_the_setting_and_readyz_says_so(tmp_path: Path) -> None:
    gone = f"redis://127.0.0.1:{free_port()}/0"
    app = create_app(_settings(tmp_path, f"sqlite:///{tmp_path / 'k.db'}", redis_url=gone))
    with TestClient(app) as client:
        response = client.get("/v1/stacks")
        ready = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["detail"] == (
        "the rate limit store (KOMBIFY_REDIS_URL) does not answer: ConnectionError"
    )
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["redis"]["ok"] is False and "KOMBIFY_REDIS_URL" in checks["redis"]["error"]
    assert ready.json()["detail"] == "temporal and redis not reachable"


def test_readyz_reports_redis_when_it_answers(redis_url: str, tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path, f"sqlite:///{tmp_path / 'k.db'}", redis_url=redis_url))
    with TestClient(app) as client:
        body = client.get("/readyz").json()
    assert body["checks"]["redis"] == {"ok": True, "error": None}
    assert body["checks"]["database"]["ok"] is True
    assert body["detail"] == "temporal not reachable"  # only Temporal is absent here


def test_readyz_has_no_redis_check_without_redis(tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path, f"sqlite:///{tmp_path / 'k.db'}"))
    with TestClient(app) as client:
        body = client.get("/readyz").json()
    # Only the dependencies that decide readiness; optional tools (graphviz) are reported
    # beside them with required: false.
    required = {name for name, check in body["checks"].items() if check.get("required", True)}
    assert required == {"database", "temporal"}
