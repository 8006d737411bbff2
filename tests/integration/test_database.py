"""Migrations and stack persistence, on SQLite and a real PostgreSQL alike."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect
from sqlmodel import Session, select

from kombify.db import stacks as store
from kombify.db.engine import get_engine
from kombify.db.migrate import current_revision, head_revision, upgrade
from kombify.db.models import Deployment, StackRevision
from kombify.errors import ConflictError, NotFoundError

CORE_TABLES = {
    "organisation",
    "user",
    "stack",
    "stackrevision",
    "deployment",
    "node",
    "simulation",
    "event",
    "activity",
    "membership",
    "usersession",
    "apikey",
}


def test_upgrade_creates_every_core_table_and_is_idempotent(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)  # a second start must be a no-op, not an error

    tables = set(inspect(get_engine(database_url)).get_table_names())
    assert CORE_TABLES <= tables
    assert current_revision(database_url) == head_revision()


def test_stack_revisions_and_cascading_delete(database_url: str) -> None:
    upgrade(database_url)
    with Session(get_engine(database_url)) as session:
        org = store.ensure_local_organisation(session)
        assert store.ensure_local_organisation(session).id == org.id

        stack = store.create_stack(
            session, organisation_id=org.id, name="lab", stackkit="base-homelab", source="a: 1\n"
        )
        with pytest.raises(ConflictError, match="`lab` already exists"):
            store.create_stack(
                session, organisation_id=org.id, name="lab", stackkit="base-homelab", source="b"
            )

        same = store.revise_stack(session, stack=stack, stackkit="base-homelab", source="a: 1\n")
        assert same.current_revision == 1  # unchanged text makes no new revision
        changed = store.revise_stack(session, stack=stack, stackkit="base-homelab", source="a: 2\n")
        assert changed.current_revision == 2
        assert store.current_revision(session, stack=changed).source == "a: 2\n"

        session.add(Deployment(stack_id=stack.id, revision=2, workflow_id="deploy/local/lab"))
        session.commit()
        rows, count = store.list_stacks(session, organisation_id=org.id)
        assert count == 1 and rows[0].name == "lab"

        store.delete_stack(session, stack=stack)
        with pytest.raises(NotFoundError, match="no stack named `lab`"):
            store.get_stack(session, organisation_id=org.id, name="lab")
        assert session.exec(select(StackRevision)).all() == []
        assert session.exec(select(Deployment)).all() == []


def test_processes_starting_together_migrate_once(database_url: str) -> None:
    # The worker and the API start at the same moment on a fresh database.
    import subprocess
    import sys

    code = "import sys; from kombify.db.migrate import upgrade; upgrade(sys.argv[1])"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, database_url], stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]

    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    assert current_revision(database_url) == head_revision()
