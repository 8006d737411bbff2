"""Users with live sessions and API keys, made straight in the database of a running app."""

from __future__ import annotations

from fastapi import FastAPI
from sqlmodel import Session

from kombify.accounts import api_keys, sessions, users
from kombify.api.principal import timeouts
from kombify.db.engine import get_engine
from kombify.db.stacks import ensure_local_organisation


def _db(app: FastAPI) -> Session:
    return Session(get_engine(app.state.settings.resolved_database_url))


def session_for(app: FastAPI, email: str, *, role: str = "member") -> tuple[str, str]:
    """A new user of the local organisation and a session token: (user id, token)."""
    with _db(app) as db:
        org = ensure_local_organisation(db)
        user = users.create(db, email=email, organisation=org, role=role)
        started = sessions.start(db, user_id=user.id, timeouts=timeouts(app.state.settings))
        return user.id, started.token


def api_key_for(app: FastAPI, email: str) -> tuple[str, str]:
    """A new user of the local organisation with a read key: (key id, key text)."""
    with _db(app) as db:
        org = ensure_local_organisation(db)
        user = users.create(db, email=email, organisation=org, role="member")
        row, text = api_keys.create(db, org_id=org.id, user_id=user.id, name="ci", scope="read")
        return row.id, text
