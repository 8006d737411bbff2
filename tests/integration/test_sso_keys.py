"""SSO signing keys in the database: made on first use, rotated by age and on demand,
published while in their grace period, then deleted (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlmodel import Session

from kombify.db.engine import get_engine
from kombify.db.migrate import upgrade
from kombify.db.models import utcnow
from kombify.db.sso_tables import SigningKey
from kombify.identity import signing_keys
from kombify.identity.signing_keys import KeyPolicy

POLICY = KeyPolicy(rotate_after=timedelta(days=30), grace=timedelta(hours=1))


@pytest.fixture
def db(database_url: str) -> Iterator[Session]:
    upgrade(database_url)
    with Session(get_engine(database_url)) as session:
        yield session


def _kids(db: Session) -> list[str]:
    return [k["kid"] for k in signing_keys.published(db, POLICY)["keys"]]


def _age(
    db: Session, kid: str, *, created: timedelta | None = None, retired: timedelta | None = None
) -> None:
    row = db.get(SigningKey, kid)
    assert row is not None
    if created is not None:
        row.created_at = utcnow() - created
    if retired is not None:
        row.retired_at = utcnow() - retired
    db.add(row)
    db.commit()


def test_the_first_key_is_made_on_first_use_and_then_kept(db: Session) -> None:
    first = signing_keys.active_key(db, POLICY)

    assert signing_keys.active_key(db, POLICY).kid == first.kid
    assert _kids(db) == [first.kid]


def test_the_jwks_holds_no_private_half(db: Session) -> None:
    row = signing_keys.active_key(db, POLICY)

    (published,) = signing_keys.published(db, POLICY)["keys"]

    assert "d" not in published and published == json.loads(row.public_jwk)
    assert published["kty"] == "OKP" and published["crv"] == "Ed25519"


def test_a_key_older_than_the_rotation_age_is_replaced(db: Session) -> None:
    old = signing_keys.active_key(db, POLICY).kid
    _age(db, old, created=timedelta(days=31))

    new = signing_keys.active_key(db, POLICY).kid

    assert new != old
    assert _kids(db) == [new, old]  # the old one stays published for its grace period
    states = {k.kid: k.state for k in signing_keys.listed(db, POLICY)}
    assert states == {new: "active", old: "retired"}


def test_a_retired_key_is_deleted_after_its_grace_period(db: Session) -> None:
    old = signing_keys.active_key(db, POLICY).kid
    new = signing_keys.rotate(db).kid
    _age(db, old, retired=POLICY.grace - timedelta(minutes=1))
    assert _kids(db) == [new, old]

    _age(db, old, retired=POLICY.grace + timedelta(minutes=1))

    assert _kids(db) == [new]
    assert db.get(SigningKey, old) is None


def test_when_two_processes_rotated_at_once_the_newest_key_signs(db: Session) -> None:
    first = signing_keys.active_key(db, POLICY).kid
    second = signing_keys._new_key(db, utcnow() + timedelta(seconds=1)).kid
    db.commit()

    assert signing_keys.active_key(db, POLICY).kid == second
    states = {k.kid: k.state for k in signing_keys.listed(db, POLICY)}
    assert states == {second: "active", first: "retired"}
