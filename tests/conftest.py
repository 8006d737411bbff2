"""Fixtures shared by every test: isolated KOMBIFY_HOME, real PostgreSQL, real Temporal."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from kombify.db.engine import get_engine
from kombify.settings import get_settings
from tests.support.deploy_env import KombifyEnv
from tests.support.postgres import running_postgres
from tests.support.stripe_standin import StripeStandin, running_stripe_standin
from tests.support.temporal import running_temporal

# Fixtures that reach a Docker engine: a test using one is a `docker` test, marked or not.
DOCKER_FIXTURES = {
    "docker", "docker_client", "test_image", "agent", "engine", "kombify", "test_images"
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that needs Docker, and skip them all alike when no engine answers.

    ``KOMBIFY_TESTS_NEED_DOCKER=1`` (set by scripts/test.sh, which starts an engine) turns the
    skip into an error: a run that should have had Docker must not pass by skipping.
    """
    del config
    for item in items:
        if DOCKER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.docker)
    needing = [item for item in items if item.get_closest_marker("docker")]
    if not needing:
        return
    from kombify.sim.client import engine_available

    if engine_available():
        return
    if os.environ.get("KOMBIFY_TESTS_NEED_DOCKER") == "1":
        pytest.exit("no Docker engine answers, and KOMBIFY_TESTS_NEED_DOCKER=1", returncode=3)
    skip = pytest.mark.skip(reason="no Docker engine answers (scripts/ensure-docker.sh starts one)")
    for item in needing:
        item.add_marker(skip)


@pytest.fixture(autouse=True)
def kombify_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own KOMBIFY_HOME and fresh settings; nothing leaks between tests."""
    home = tmp_path / "kombify-home"
    monkeypatch.setenv("KOMBIFY_HOME", str(home))
    for var in ("KOMBIFY_DATABASE_URL", "KOMBIFY_TEMPORAL_ADDRESS", "KOMBIFY_API_URL"):
        monkeypatch.delenv(var, raising=False)
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """One throwaway PostgreSQL for the session; URL of its maintenance database."""
    # Not under pytest's tmp dir: that is private to root, and PostgreSQL runs as `postgres`.
    base = Path(tempfile.mkdtemp(prefix="kombify-pg-"))
    try:
        with running_postgres(base) as url:
            yield url
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each engine kombify supports."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    server: str = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = server.rsplit("/", 1)[0] + f"/{name}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url
    finally:
        get_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def temporal_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Temporal dev server for the whole session."""
    with running_temporal(tmp_path_factory.mktemp("temporal")) as address:
        yield address


@pytest.fixture
def stripe_standin() -> Iterator[StripeStandin]:
    """A fresh local Stripe stand-in (tests/support/stripe_standin) for one test: ``base_url``,
    ``api_key``, ``control`` (what customers and time do), ``client()`` (the real SDK)."""
    with running_stripe_standin() as standin:
        yield standin


@pytest.fixture
def task_queue() -> str:
    """A task queue of the test's own, so workers of other tests never pick up its work."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def test_images() -> str:
    """The images the test kombinations run (kombify-test/httpd), built here when missing.

    Every module that deploys asks for it, so no test depends on another having built it.
    """
    from kombify.sim.client import docker_client
    from kombify.sim.image import ensure_httpd_image

    client = docker_client()
    try:
        return ensure_httpd_image(client)
    finally:
        client.close()


@pytest.fixture(scope="module")
async def kombify(
    temporal_address: str, tmp_path_factory: pytest.TempPathFactory, test_images: str
) -> AsyncIterator[KombifyEnv]:
    """A whole kombify (worker process + API app) for one test module; its sims removed after."""
    env = KombifyEnv(tmp_path_factory.mktemp("kombify-home"), temporal_address)
    env.start_worker()
    yield env
    await env.close()
