"""Alembic environment: kombify's tables, the URL handed in by ``kombify.db.migrate``."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import kombify.db.account_tables  # noqa: F401  (registers every table on SQLModel.metadata)
import kombify.db.billing_tables  # noqa: F401
import kombify.db.models  # noqa: F401
import kombify.db.oidc_tables  # noqa: F401
import kombify.db.schedule_tables  # noqa: F401
import kombify.db.sso_tables  # noqa: F401
from kombify.db.engine import get_engine

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "kombify.db.migrate sets sqlalchemy.url"
    with get_engine(url).connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
