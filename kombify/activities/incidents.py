"""Activities that record incidents and tell the owner about them.

They carry ids and words only (the contracts of :mod:`kombify.contracts.heal`); the
notification URLs are read from the settings here, so no token enters a workflow history.
A receiver that does not take a message is a result, not a failure: a dead webhook must
never hold up the healing that reports to it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from kombify.activities.deploy import user_error
from kombify.contracts.heal import (
    OPEN,
    RECOVERED,
    DriftStillThere,
    Incident,
    IncidentKey,
    IncidentOpen,
    IncidentUpdate,
    NotifyInput,
)
from kombify.db import incidents as records
from kombify.db.engine import get_engine
from kombify.errors import KombifyError
from kombify.notify import EVENT_TYPES, incident_message, send
from kombify.settings import Settings

T = TypeVar("T")


class IncidentActivities:
    """Incident records and notifications, bound to kombify's database and settings.

    Args:
        settings: Where the database is, and the notification URLs.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._url = settings.resolved_database_url

    def _session(self) -> Session:
        return Session(get_engine(self._url))

    def _recorded(self, work: Callable[[Session], T]) -> T:
        # Unknown stacks or incidents and bad states or times are the caller's mistakes:
        # retrying the same input cannot help, so none of them is retried.
        try:
            with self._session() as session:
                return work(session)
        except KombifyError as exc:
            raise user_error(exc) from exc
        except ValueError as exc:
            raise ApplicationError(str(exc), type="invalid-incident", non_retryable=True) from exc

    @activity.defn(name="OpenIncident")
    def open(self, opened: IncidentOpen) -> int:
        """Record a new incident; a retry of the same one returns its id."""
        return self._recorded(lambda session: records.open_incident(session, opened))

    @activity.defn(name="UpdateIncident")
    def update(self, update: IncidentUpdate) -> Incident:
        """Add an action and/or set a state; the incident as it is now."""
        return self._recorded(lambda session: records.update_incident(session, update))

    @activity.defn(name="OpenIncidentFor")
    def open_for(self, key: IncidentKey) -> Incident | None:
        """The open incident of that node, service and kind, if any."""
        return self._recorded(
            lambda session: records.open_incident_for(
                session, key.organisation, key.stack, key.node, key.service, key.kind
            )
        )

    @activity.defn(name="NotifyIncident")
    def notify(self, request: NotifyInput) -> list[str]:
        """Send the incident's event to every notification URL; the masked failures.

        Nothing to do (and [] returned) when no URL is configured. Receivers that do not
        take the message are listed, not raised: the activity succeeds all the same.
        """
        if request.event not in EVENT_TYPES:
            raise ApplicationError(
                f"notification event `{request.event}` is not one of {', '.join(EVENT_TYPES)}",
                type="invalid-incident",
                non_retryable=True,
            )
        urls = self.settings.notify_url_list
        if not urls:
            return []
        with self._session() as session:
            incident = records.get_incident(session, request.incident)
        if incident is None:
            raise ApplicationError(
                f"no incident {request.incident}", type="not-found", non_retryable=True
            )
        title, body = incident_message(incident, request.event)
        return send(urls, title, body, kind=EVENT_TYPES[request.event])

    @activity.defn(name="CloseMendedDrift")
    def close_mended_drift(self, found: DriftStillThere) -> list[int]:
        """Close the open drift incidents whose drift a check no longer finds; their ids.

        A node that did not answer the check keeps its incidents as they are: no news is not
        good news.
        """
        still = set(found.drifting)
        away = set(found.unreachable)
        now = datetime.now(UTC).isoformat(timespec="milliseconds")

        def close(session: Session) -> list[int]:
            closed = []
            for incident in records.list_incidents(
                session, found.stack.organisation, found.stack.stack, state=OPEN
            ):
                key = f"{incident.node}/{incident.service}"
                if incident.kind != "drift" or key in still or incident.node in away:
                    continue
                records.update_incident(
                    session,
                    IncidentUpdate(
                        incident.id,
                        action="the drift is gone",
                        state=RECOVERED,
                        recovered_at=now,
                    ),
                )
                closed.append(incident.id)
            return closed

        closed = self._recorded(close)
        for incident_id in closed:
            self.notify(NotifyInput(incident_id, RECOVERED))
        return closed

    def all(self) -> list[Callable[..., Any]]:
        """Every activity of this class, for the worker's registry."""
        return [self.open, self.update, self.open_for, self.notify, self.close_mended_drift]
