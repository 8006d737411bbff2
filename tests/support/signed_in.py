"""An API over a fresh database with users and sessions made directly in it, for tests of what
signed-in people do (``Lab.login`` goes through ``POST /v1/auth/login`` where that matters)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session

from kombify.accounts import orgs, sessions, users
from kombify.api.app import create_app
from kombify.api.principal import timeouts
from kombify.db.account_tables import UserSession
from kombify.db.engine import get_engine
from kombify.db.models import Organisation, User, utcnow
from kombify.settings import Settings
from tests.support.ports import free_port

PASSWORD = "a long enough passphrase"  # noqa: S105 - the tests' own


@dataclass
class Lab:
    """The running app, its database and settings."""

    client: TestClient
    db: Session
    settings: Settings

    def org(self, slug: str) -> Organisation:
        """A new organisation."""
        return orgs.create(self.db, slug=slug)

    def user(self, email: str, org: Organisation, role: str = "member") -> User:
        """A new user with a password, member of ``org``."""
        return users.create(self.db, email=email, organisation=org, role=role, password=PASSWORD)

    def sign_in(self, user: User) -> dict[str, str]:
        """Headers of a new session of ``user`` (as a login would make it)."""
        new = sessions.start(self.db, user_id=user.id, timeouts=timeouts(self.settings))
        return {"Authorization": f"Bearer {new.token}"}

    def login(self, email: str, password: str = PASSWORD, **extra: str) -> Any:
        """``POST /v1/auth/login``'s answer (cookies dropped: the tests send the token)."""
        response = self.client.post(
            "/v1/auth/login", json={"email": email, "password": password, **extra}
        )
        self.client.cookies.clear()
        return response

    def session_row(self, headers: dict[str, str]) -> UserSession:
        """The session row behind ``headers``."""
        token = headers["Authorization"].removeprefix("Bearer ")
        self.db.expire_all()  # the API changed rows through its own sessions
        found = sessions.find(self.db, token, timeouts(self.settings))
        assert found is not None
        return found

    def reauthenticated(self, headers: dict[str, str], minutes_ago: int) -> None:
        """Pretend the session's last password check was ``minutes_ago`` minutes ago."""
        row = self.session_row(headers)
        row.reauthenticated_at = utcnow() - timedelta(minutes=minutes_ago)
        self.db.add(row)
        self.db.commit()


@contextmanager
def running_lab(database_url: str, home: Path, **settings: Any) -> Iterator[Lab]:
    """A TestClient over ``create_app`` on ``database_url`` (migrated), with a DB session."""
    config = Settings(
        home=home,
        database_url=database_url,
        temporal_address=f"127.0.0.1:{free_port()}",
        public_url="https://kombify.lab.test",
        **settings,
    )
    app = create_app(config)
    with TestClient(app, raise_server_exceptions=False) as client:
        with Session(get_engine(database_url)) as db:
            yield Lab(client=client, db=db, settings=config)


def problem_detail(response: Any, status: int, code: str) -> str:
    """The detail of a problem+json answer, after checking its status and type."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"].endswith("/" + code), body
    return str(body["detail"])
