"""Activities of ``ReportUsage``: measure deploy minutes, find and report unreported hours.

They take ids and times and read the database and the settings themselves, so no Stripe key
or customer id enters a workflow history. With billing off they find nothing to do.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from kombify.billing.usage import API_CALLS, DEPLOY_MINUTES, closed_before, measure_deploy_minutes
from kombify.billing.usage_report import (
    MeterEvent,
    MeterEventSender,
    organisations_to_report,
    report_organisation,
)
from kombify.contracts.usage import OrgUsageInput, OrgUsageResult, UsageWindow
from kombify.db.engine import get_engine
from kombify.db.models import utcnow
from kombify.settings import Settings

# A key in an error text (Stripe masks keys in its messages; this makes sure).
_SECRET = re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_\w+|\bwhsec_\w+")


class UsageActivities:
    """Usage reporting, bound to kombify's database and a way to send meter events."""

    def __init__(self, settings: Settings, send: MeterEventSender | None = None) -> None:
        self.settings = settings
        self._send = send

    def _sender(self) -> MeterEventSender:
        if self._send is None:
            from kombify.billing.stripe_client import StripeBilling

            stripe = StripeBilling(self.settings)

            def send(event: MeterEvent) -> bool:
                return stripe.report_meter_event(
                    event_name=event.event_name,
                    customer_id=event.stripe_customer_id,
                    value=event.value,
                    identifier=event.identifier,
                    timestamp=event.timestamp,
                )

            self._send = send
        return self._send

    def _session(self) -> Session:
        return Session(get_engine(self.settings.resolved_database_url))

    @staticmethod
    def _until(window: str) -> datetime:
        # The workflow decides the hour; this clock only holds back an hour not settled yet
        # (a retried or late activity never reports more than the workflow asked).
        return min(datetime.fromisoformat(window), closed_before(utcnow()))

    @activity.defn(name="MeasureDeployMinutes")
    def measure(self, window: UsageWindow) -> int:
        """Store the deploy minutes of the closed hours; how many records changed."""
        if not self.settings.billing_enabled:
            return 0
        with self._session() as session:
            return measure_deploy_minutes(session, until=self._until(window.until))

    @activity.defn(name="ListUsageToReport")
    def organisations(self, window: UsageWindow) -> list[str]:
        """Ids of the organisations with a Stripe customer and unreported closed hours."""
        if not self.settings.billing_enabled:
            return []
        with self._session() as session:
            return organisations_to_report(session, until=self._until(window.until))

    @activity.defn(name="ReportOrgUsage")
    def report(self, request: OrgUsageInput) -> OrgUsageResult:
        """Send the organisation's unreported closed hours to Stripe, each marked once sent."""
        if not self.settings.billing_enabled:
            return OrgUsageResult()
        names = {
            DEPLOY_MINUTES: self.settings.stripe_meter_deploy_minutes,
            API_CALLS: self.settings.stripe_meter_api_calls,
        }
        with self._session() as session:
            try:
                done = report_organisation(
                    session,
                    organisation_id=request.organisation_id,
                    until=self._until(request.until),
                    event_names=names,
                    send=self._sender(),
                    progress=activity.heartbeat,
                )
            except Exception as exc:
                refusal = stripe_failure(exc)
                if refusal is None:
                    raise
                raise refusal from exc
        return OrgUsageResult(sent=done.sent, already_reported=done.already)

    def all(self) -> list[Callable[..., Any]]:
        """Every activity of this class, for the worker's registry."""
        return [self.measure, self.organisations, self.report]


def stripe_failure(exc: BaseException) -> ApplicationError | None:
    """Stripe's refusal or absence as the activity's error, None for anything else.

    A refusal (4xx other than 429) would be refused again: not retried (``stripe-refused``),
    the organisation is tried again by the next run. Stripe not answering, 429 and 5xx are
    retried (``stripe-unavailable``). The text is the SDK's message, which names no key.
    """
    import stripe

    found: BaseException | None = exc
    while found is not None and not isinstance(found, stripe.StripeError):
        found = found.__cause__
    if found is None:
        return None
    status = found.http_status or 0
    message = _SECRET.sub("[redacted]", str(found.user_message or type(found).__name__))[:300]
    if 400 <= status < 500 and status != 429:
        return ApplicationError(
            f"Stripe refused a meter event ({status}): {message}",
            type="stripe-refused",
            non_retryable=True,
        )
    return ApplicationError(
        f"Stripe did not take a meter event: {message}", type="stripe-unavailable"
    )
