"""Sending one meter event to Stripe (the sender ``ReportUsage``'s activity uses)."""

from __future__ import annotations

from kombify.billing.usage_report import MeterEvent, MeterEventSender
from kombify.settings import Settings


def stripe_sender(settings: Settings) -> MeterEventSender:
    """A sender through the Stripe SDK with the settings' key and API base."""
    import stripe

    assert settings.stripe_api_key is not None, "billing is off: nothing is reported"
    client = stripe.StripeClient(
        settings.stripe_api_key.get_secret_value(),
        base_addresses={"api": settings.stripe_api_base} if settings.stripe_api_base else {},
        max_network_retries=2,
    )

    def send(event: MeterEvent) -> bool:
        try:
            client.billing.meter_events.create(
                params={
                    "event_name": event.event_name,
                    "identifier": event.identifier,
                    "timestamp": event.timestamp,
                    "payload": {
                        "stripe_customer_id": event.stripe_customer_id,
                        "value": str(event.value),
                    },
                }
            )
        except stripe.InvalidRequestError as exc:
            # Stripe keeps identifiers (24 hours at least) and refuses a second event with one.
            if exc.code == "resource_already_exists" and exc.param == "identifier":
                return False
            raise
        return True

    return send
