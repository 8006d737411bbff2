"""Applies Alembic migrations; every process that opens the database calls ``upgrade`` first."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
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


def upgrade(url: str) -> None:
    """Bring the database at ``url`` to the newest schema; a no-op when it already is."""
    try:
        if current_revision(url) == head_revision():
            return
        command.upgrade(alembic_config(url), "head")
    except SQLAlchemyError as exc:
        raise ServiceUnavailableError(f"cannot migrate the database: {exc}") from exc
