"""Accounts in API tests: an app with the first owner made, and people signed in over HTTPS.

The test client talks to ``https://testserver`` so that the ``__Host-`` cookies (Secure) are
kept and sent as a browser would.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from kombify.accounts import orgs, users
from kombify.api.app import create_app
from kombify.db.account_tables import Membership
from kombify.db.engine import get_engine
from kombify.db.models import Organisation
from kombify.settings import Settings
from tests.support.ports import free_port

PASSWORD = "a long enough passphrase"
OWNER = "owner@example.org"


@dataclass
class Installation:
    """A started app whose first owner exists (the admin token is retired)."""

    app: FastAPI
    settings: Settings
    admin_token: str

    def client(self, **headers: str) -> TestClient:
        """A new client (its own cookie jar), sending ``headers``."""
        c = TestClient(self.app, base_url="https://testserver", raise_server_exceptions=False)
        c.headers.update(headers)
        return c

    def db(self) -> Session:
        """A database session on the installation's database."""
        return Session(get_engine(self.settings.resolved_database_url))

    def login(self, email: str, password: str = PASSWORD, **extra: Any) -> TestClient:
        """A client signed in as ``email`` (cookies set; Bearer token too)."""
        c = self.client()
        response = c.post("/v1/auth/login", json={"email": email, "password": password, **extra})
        assert response.status_code == 200, response.text
        body = response.json()
        c.headers["X-CSRF-Token"] = body["csrf"]
        c.headers["X-Test-Session-Token"] = body["token"]
        return c

    def bearer(self, email: str, password: str = PASSWORD) -> TestClient:
        """A client that sends the session token as Bearer (no cookies)."""
        token = self.login(email, password).headers["X-Test-Session-Token"]
        return self.client(Authorization=f"Bearer {token}")

    def add_user(self, email: str, org_slug: str, role: str) -> None:
        """A user with ``PASSWORD`` in ``org_slug`` (made when missing) with ``role``."""
        with self.db() as db:
            org = orgs.by_slug(db, org_slug) or orgs.create(db, slug=org_slug)
            existing = users.by_email(db, email)
            if existing is None:
                users.create(
                    db, email=email, organisation=org, role=role, password=PASSWORD,
                    email_verified=True,
                )  # fmt: skip
            else:
                db.add(Membership(organisation_id=org.id, user_id=existing.id, role=role))
                db.commit()

    def org(self, slug: str) -> Organisation:
        with self.db() as db:
            found = orgs.by_slug(db, slug)
            assert found is not None
            return found


@contextmanager
def installation(tmp_path: Path, database_url: str, **settings: Any) -> Iterator[Installation]:
    """A started app with its first owner ``OWNER`` (in the default organisation ``local``)."""
    config = Settings(
        home=tmp_path,
        database_url=database_url,
        **({"temporal_address": f"127.0.0.1:{free_port()}"} | settings),
    )
    app = create_app(config)
    with TestClient(app, base_url="https://testserver") as starter:
        token = app.state.admin_token
        made = starter.post(
            "/v1/admin/owner",
            json={"email": OWNER, "password": PASSWORD},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert made.status_code == 201, made.text
        yield Installation(app=app, settings=config, admin_token=token)
