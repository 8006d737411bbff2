"""A Python client of the stand-in's ``/_standin`` control API (what customers and time do)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx


class StandinError(RuntimeError):
    """The control API refused (unknown id, wrong state); ``status`` and Stripe's error body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status}: {body.get('error', {}).get('message', body)}")
        self.status = status
        self.body = body


class StandinControl:
    """Drive the stand-in: complete checkouts, end periods, pay invoices, read deliveries."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=30.0)

    def close(self) -> None:
        self._http.close()

    def _call(
        self, verb: str, route: str, body: dict[str, Any] | None = None, /, **query: str | None
    ) -> Any:
        response = self._http.request(
            verb,
            route,
            json=body if verb == "POST" else None,
            params={k: v for k, v in query.items() if v is not None},
        )
        data = response.json()
        if response.status_code >= 400:
            raise StandinError(response.status_code, data)
        return data

    # --- what customers and time do -------------------------------------------------------

    def complete_checkout(self, session_id: str) -> dict[str, Any]:
        """The customer finished Checkout: ``{"session", "subscription", "invoice", "events"}``.

        Emits ``customer.subscription.created``, ``invoice.paid`` (none during a trial),
        ``checkout.session.completed``.
        """
        return dict(self._call("POST", f"/_standin/checkout_sessions/{session_id}/complete"))

    def renew(self, subscription_id: str, *, paid: bool = True) -> dict[str, Any]:
        """The period ends (``cancel_at_period_end`` applied, else a new period is billed)."""
        return dict(
            self._call("POST", f"/_standin/subscriptions/{subscription_id}/renew", {"paid": paid})
        )

    def end_period(self, subscription_id: str, *, paid: bool = True) -> dict[str, Any]:
        """Same as :meth:`renew` (the name that reads better for a cancellation)."""
        return dict(
            self._call(
                "POST", f"/_standin/subscriptions/{subscription_id}/end_period", {"paid": paid}
            )
        )

    def end_trial(self, subscription_id: str, *, paid: bool = True) -> dict[str, Any]:
        """The trial ends now and the first period is billed."""
        return dict(
            self._call(
                "POST", f"/_standin/subscriptions/{subscription_id}/end_trial", {"paid": paid}
            )
        )

    def pay_invoice(self, invoice_id: str, *, paid: bool = True) -> dict[str, Any]:
        """A retry of an open invoice's payment succeeds (or fails again with ``paid=False``)."""
        return dict(self._call("POST", f"/_standin/invoices/{invoice_id}/pay", {"paid": paid}))

    def redeliver(self, event_id: str, *, endpoint: str | None = None) -> dict[str, Any]:
        """Send an event again (same id), to every matching endpoint or to ``endpoint``."""
        body = {"endpoint": endpoint} if endpoint else {}
        return dict(self._call("POST", f"/_standin/events/{event_id}/redeliver", body))

    def add_webhook_endpoint(
        self, url: str, enabled_events: list[str], *, secret: str | None = None
    ) -> dict[str, Any]:
        """A webhook endpoint, with ``secret`` (``whsec_…``) as its signing secret when given;
        the answer has the ``secret``."""
        body = {"url": url, "enabled_events": enabled_events, "secret": secret}
        return dict(self._call("POST", "/_standin/webhook_endpoints", body))

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/_standin/subscriptions/{subscription_id}"))

    # --- what happened --------------------------------------------------------------------

    def deliveries(
        self, *, type: str | None = None, event: str | None = None
    ) -> list[dict[str, Any]]:  # noqa: A002
        """Webhook deliveries: ``event``, ``type``, ``endpoint``, ``url``, ``status``
        (pending, delivered, failed), ``attempts`` [{status_code, error, at}]."""
        return list(self._call("GET", "/_standin/deliveries", type=type, event=event)["data"])

    def meter_events(self, *, event_name: str | None = None) -> list[dict[str, Any]]:
        """Meter events received: ``{"event", "meter", "problem"}`` each."""
        return list(self._call("GET", "/_standin/meter_events", event_name=event_name)["data"])

    def requests(
        self, *, path: str | None = None, method: str | None = None
    ) -> list[dict[str, Any]]:
        """API requests received: method, path, params, idempotency_key, status, replayed."""
        return list(self._call("GET", "/_standin/requests", path=path, method=method)["data"])

    def configure(self, *, retry_delays: list[float]) -> None:
        """Seconds between a failed webhook delivery's attempts (their count is one more)."""
        self._call("POST", "/_standin/config", {"retry_delays": retry_delays})

    def reset(self) -> None:
        """Forget every object, event, delivery and idempotency key."""
        self._call("POST", "/_standin/reset")

    def wait_for_deliveries(
        self,
        count: int,
        *,
        done: Callable[[dict[str, Any]], bool] = lambda d: d["status"] != "pending",
        type: str | None = None,  # noqa: A002
        timeout: float = 30.0,
    ) -> list[dict[str, Any]]:
        """At least ``count`` deliveries (of ``type``) that are ``done``; raises on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            found = [d for d in self.deliveries(type=type) if done(d)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(found)} of {count} deliveries after {timeout} s: {found}")
            time.sleep(0.05)
