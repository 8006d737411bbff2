"""Incident records, on SQLite and a real PostgreSQL alike: retried writes change nothing twice."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import inspect
from sqlmodel import Session

from kombify.contracts.heal import GIVEN_UP, OPEN, RECOVERED, IncidentOpen, IncidentUpdate
from kombify.db import incidents
from kombify.db import stacks as store
from kombify.db.engine import get_engine
from kombify.db.migrate import upgrade
from kombify.errors import NotFoundError

DETECTED = "2026-12-03T10:00:00.250000+00:00"


def _opened(**changes: str) -> IncidentOpen:
    fields = {
        "organisation": "local",
        "stack": "lab",
        "node": "box",
        "service": "web",
        "kind": "exited",
        "detection": "agent watch: docker event die",
        "detail": "exit code 137",
        "detected_at": DETECTED,
    }
    return IncidentOpen(**{**fields, **changes})


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    upgrade(database_url)
    with Session(get_engine(database_url)) as session:
        org = store.ensure_local_organisation(session)
        store.create_stack(
            session, organisation_id=org.id, name="lab", stackkit="base-homelab", source="x"
        )
        yield session


def test_the_table_has_its_stack_and_state_index(database_url: str, session: Session) -> None:
    indexes = inspect(get_engine(database_url)).get_indexes("incident")
    assert {"name": "ix_incident_stack_id_state", "columns": ["stack_id", "state"]} in [
        {"name": i["name"], "columns": i["column_names"]} for i in indexes
    ]


def test_opening_the_same_incident_again_returns_its_id(session: Session) -> None:
    first = incidents.open_incident(session, _opened())
    again = incidents.open_incident(session, _opened(detail="seen again by the retry"))
    other = incidents.open_incident(session, _opened(detected_at="2026-12-03T10:05:00+00:00"))

    assert again == first and other != first
    stored = incidents.get_incident(session, first)
    assert stored is not None
    where = (stored.stack, stored.node, stored.service, stored.kind)
    assert where == ("lab", "box", "web", "exited")
    assert stored.detected_at == DETECTED
    assert stored.detail == "exit code 137"  # the retry did not overwrite it
    assert (stored.state, stored.action, stored.actions) == (OPEN, "", [])
    assert stored.recovered_at == "" and stored.time_to_recovery_s is None


def test_an_action_retried_is_stored_once_and_recovery_is_timed(session: Session) -> None:
    number = incidents.open_incident(session, _opened())

    incidents.update_incident(session, IncidentUpdate(number, action="restarted web-1"))
    incidents.update_incident(session, IncidentUpdate(number, action="restarted web-1"))
    incidents.update_incident(session, IncidentUpdate(number, action="health check passed"))
    done = incidents.update_incident(
        session,
        IncidentUpdate(
            number,
            action="restarted web-1",
            state=RECOVERED,
            recovered_at="2026-12-03T10:00:03.450000+00:00",
        ),
    )

    assert done.actions == ["restarted web-1", "health check passed", "restarted web-1"]
    assert done.action == "restarted web-1"
    assert done.state == RECOVERED
    assert done.recovered_at == "2026-12-03T10:00:03.450000+00:00"
    assert done.time_to_recovery_s == 3.2
    # Recovered again (a retried activity) without a time keeps the first recovery time.
    retried = incidents.update_incident(session, IncidentUpdate(number, state=RECOVERED))
    assert retried.recovered_at == done.recovered_at
    assert incidents.get_incident(session, number) == retried


def test_recovered_without_a_time_is_now(session: Session) -> None:
    number = incidents.open_incident(session, _opened(detected_at="2020-01-01T00:00:00Z"))
    done = incidents.update_incident(session, IncidentUpdate(number, state=RECOVERED))
    assert done.recovered_at > "2026"
    assert done.time_to_recovery_s is not None and done.time_to_recovery_s > 10**8


def test_giving_up_replaces_kind_and_detail(session: Session) -> None:
    number = incidents.open_incident(session, _opened(kind="unhealthy"))
    given_up = incidents.update_incident(
        session,
        IncidentUpdate(
            number, state=GIVEN_UP, kind="crash-looping", detail="last lines:\nboom", action="x"
        ),
    )
    assert (given_up.state, given_up.kind, given_up.detail) == (
        GIVEN_UP, "crash-looping", "last lines:\nboom"
    )
    assert given_up.recovered_at == "" and given_up.time_to_recovery_s is None


@pytest.mark.parametrize(
    ("update", "message"),
    [
        (IncidentUpdate(0, state="fixed"), "incident state `fixed` is not one of open, recovered"),
        (IncidentUpdate(0, state="Open"), "incident state `Open` is not one of"),
        (
            IncidentUpdate(0, state=OPEN, recovered_at="2026-12-03T10:00:00Z"),
            "recovered_at is set only together with state `recovered`",
        ),
        (
            IncidentUpdate(0, state=RECOVERED, recovered_at="yesterday"),
            "recovered_at `yesterday` is not an RFC 3339 time",
        ),
    ],
)
def test_bad_updates_are_refused_and_change_nothing(
    session: Session, update: IncidentUpdate, message: str
) -> None:
    number = incidents.open_incident(session, _opened())
    before = incidents.get_incident(session, number)
    bad = IncidentUpdate(number, action="should not land", state=update.state,
                         recovered_at=update.recovered_at)

    with pytest.raises(ValueError, match=message):
        incidents.update_incident(session, bad)
    assert incidents.get_incident(session, number) == before


def test_unknown_incident_stack_and_state(session: Session) -> None:
    with pytest.raises(NotFoundError, match="no incident 424242"):
        incidents.update_incident(session, IncidentUpdate(424242, action="x"))
    assert incidents.get_incident(session, 424242) is None
    with pytest.raises(NotFoundError, match="no stack named `other`"):
        incidents.open_incident(session, _opened(stack="other"))
    with pytest.raises(ValueError, match="detected_at `soon` is not an RFC 3339 time"):
        incidents.open_incident(session, _opened(detected_at="soon"))
    with pytest.raises(ValueError, match="incident state `closed`"):
        incidents.list_incidents(session, "local", "lab", state="closed")


def test_listing_is_newest_first_by_state_and_finds_the_open_one(session: Session) -> None:
    old = incidents.open_incident(session, _opened(detected_at="2026-12-03T09:00:00Z"))
    new = incidents.open_incident(session, _opened(detected_at="2026-12-03T11:00:00Z"))
    mid = incidents.open_incident(session, _opened(detected_at="2026-12-03T10:00:00Z", node="nas"))
    incidents.update_incident(session, IncidentUpdate(old, state=RECOVERED))

    assert [i.id for i in incidents.list_incidents(session, "local", "lab")] == [new, mid, old]
    assert [i.id for i in incidents.list_incidents(session, "local", "lab", state=OPEN)] == [
        new, mid
    ]
    assert [i.id for i in incidents.list_incidents(session, "local", "lab", limit=1)] == [new]

    found = incidents.open_incident_for(session, "local", "lab", "box", "web", "exited")
    assert found is not None and found.id == new
    incidents.update_incident(session, IncidentUpdate(new, state=GIVEN_UP))
    assert incidents.open_incident_for(session, "local", "lab", "box", "web", "exited") is None
    assert incidents.open_incident_for(session, "local", "lab", "nas", "web", "exited") is not None
    assert incidents.open_incident_for(session, "local", "lab", "box", "db", "exited") is None


def test_deleting_the_stack_deletes_its_incidents(session: Session) -> None:
    number = incidents.open_incident(session, _opened())
    org = store.ensure_local_organisation(session)
    store.delete_stack(session, stack=store.get_stack(session, organisation_id=org.id, name="lab"))
    assert incidents.get_incident(session, number) is None
