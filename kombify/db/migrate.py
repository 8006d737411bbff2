"""Applies Alembic migrations; every process that opens the database calls ``upgrade`` first."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from kombify.db.engine import get_engine
from kombify.errors import ServiceUnavailableError

_MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    """An Alembic config for ``url`` pointing at kombify's migration scripts."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    # ConfigParser interpolation would choke on '%' in passwords.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str | None:
    """The newest migration this code ships."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(url: str) -> str | None:
    """The migration the database at ``url`` is at (None when never migrated)."""
    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


# Any constant works: it names kombify's migration lock among PostgreSQL advisory locks.
_PG_LOCK_KEY = 0x6B6F6D62


@contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    """Only one process migrates at a time (the worker and the API start together)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        lock_path = Path(str(parsed.database)).expanduser().with_suffix(".migrate-lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    elif parsed.get_backend_name() == "postgresql":
        with get_engine(url).connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_LOCK_KEY})
    else:
        yield


def upgrade(url: str) -> None:
    """Bring the database at ``url`` to the newest schema; a no-op when it already is."""
    try:
        if current_revision(url) == head_revision():
            return
        with _migration_lock(url):
            if current_revision(url) != head_revision():  # another process may have done it
                command.upgrade(alembic_config(url), "head")
    except SQLAlchemyError as exc:
        raise ServiceUnavailableError(f"cannot migrate the database: {exc}") from exc
