"""The dataclasses that cross the boundary of the ProvisionSubscription workflow.

Only what the workflow needs of a Stripe event travels here (ids, a status, a plan, times as
Unix seconds): never the event's whole payload, never a key or a signature.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SUBSCRIPTION_WORKFLOW_PREFIX = "kombify-subscription."
EVENT_SIGNAL = "stripe_event"
# The Stripe event types the workflow acts on; every other type is acknowledged and dropped.
HANDLED_EVENTS = (
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.payment_failed",
    "invoice.paid",
)


def subscription_workflow_id(organisation_id: str) -> str:
    """The id of an organisation's ProvisionSubscription workflow (one per organisation)."""
    return f"{SUBSCRIPTION_WORKFLOW_PREFIX}{organisation_id}"


@dataclass(frozen=True)
class BillingSignal:
    """One verified Stripe event, reduced to what the workflow needs.

    Times are Unix seconds (Stripe's own unit); ``None`` when the event does not say.
    ``plan`` is set when the checkout session names it in ``metadata.kombify_plan``;
    ``price_id`` is the subscription's (first) price.
    """

    event_id: str
    type: str
    created: int
    object_id: str = ""
    status: str = ""
    price_id: str = ""
    plan: str = ""
    current_period_end: int | None = None
    trial_end: int | None = None
    cancel_at_period_end: bool | None = None
    customer: str = ""
    subscription: str = ""
    # Days a failed payment keeps the plan (the installation's KOMBIFY_BILLING_GRACE_DAYS).
    grace_days: int = 7


@dataclass
class SubscriptionState:
    """What the workflow knows of one organisation's subscription (its query ``state``).

    ``plan`` is the plan in force; ``paid_plan`` the plan Stripe bills for (they differ while a
    downgrade waits for the period's end, and after a grace period ran out).
    """

    plan: str = "free"
    status: str = "none"
    paid_plan: str = "free"
    customer: str = ""
    subscription: str = ""
    current_period_end: int | None = None
    trial_end: int | None = None
    cancel_at_period_end: bool = False
    pending_plan: str | None = None
    grace_until: int | None = None
    # `created` of the newest subscription event applied: older ones arriving late are stale.
    subscription_seen: int = 0
    # Event ids applied, newest last (bounded): a redelivered event is applied once.
    applied: list[str] = field(default_factory=list)
    # Signals received but not applied yet (carried across continue-as-new).
    queued: list[BillingSignal] = field(default_factory=list)
    # Grace periods that ran out and were told to the owners (their grace_until), newest last.
    downgrades_notified: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class SubscriptionInput:
    """An organisation's workflow: its id, and the state carried across continue-as-new."""

    organisation_id: str
    state: SubscriptionState | None = None
    # Continue as new past this many history events (or when the server suggests it).
    history_threshold: int = 5000
    # How many applied event ids are remembered.
    remembered_events: int = 500


@dataclass(frozen=True)
class PlanQuery:
    """Which plan a Stripe price id stands for, for this organisation."""

    organisation_id: str
    price_id: str


@dataclass(frozen=True)
class BillingRecord:
    """The ``org_billing`` row the workflow wants (written as is; twice is harmless)."""

    organisation_id: str
    plan: str
    status: str
    customer: str = ""
    subscription: str = ""
    current_period_end: int | None = None
    trial_end: int | None = None
    cancel_at_period_end: bool = False
    pending_plan: str | None = None
    grace_until: int | None = None


@dataclass(frozen=True)
class DowngradeNotice:
    """Tell an organisation's owners its plan moved to Free; ``reference`` makes it once."""

    organisation_id: str
    from_plan: str
    reason: str
    reference: str


@dataclass(frozen=True)
class NoticeResult:
    """Mails written to the outbox (0 when a retry finds them written) and URL failures."""

    mailed: int
    failures: list[str] = field(default_factory=list)
