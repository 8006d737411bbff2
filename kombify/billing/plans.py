"""The plans kombify sells, as data: what each costs and what it allows.

One table serves every reader: the entitlement checks (kombify.billing.entitlements), the
API's ``GET /v1/plans`` and the dashboard's pricing page. Prices map to Stripe price ids
through settings (``KOMBIFY_STRIPE_PRICE_PRO`` …); Enterprise has no list price: an admin
sets the price id an organisation's checkout uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

PlanId = Literal["free", "pro", "team", "enterprise"]
KombiSimLevel = Literal["basic", "full"]
StackKitLevel = Literal["base", "premium"]

# The StackKits of the "base" level; every other kit needs "premium".
BASE_STACKKITS: frozenset[str] = frozenset({"base-homelab"})
# KombiSim "basic": this many simulations at once, of at most this many nodes each.
BASIC_SIMULATIONS = 1
BASIC_SIMULATION_NODES = 3


@dataclass(frozen=True)
class Entitlements:
    """What an organisation may do; ``None`` means no limit."""

    stacks: int | None
    kombisim: KombiSimLevel
    stackkits: StackKitLevel
    # Members beyond the owner (team collaboration).
    team: bool
    # A custom identity provider (single sign-on configured by the organisation).
    sso: bool
    priority_support: bool

    @property
    def simulations(self) -> int | None:
        return BASIC_SIMULATIONS if self.kombisim == "basic" else None

    @property
    def simulation_nodes(self) -> int | None:
        return BASIC_SIMULATION_NODES if self.kombisim == "basic" else None


@dataclass(frozen=True)
class Plan:
    """One plan: its order (higher allows more), list price and entitlements."""

    id: PlanId
    name: str
    rank: int
    # US cents a month; None: a custom price an admin sets (Enterprise).
    monthly_cents: int | None
    summary: str
    entitlements: Entitlements

    @property
    def self_serve(self) -> bool:
        """Bought through Checkout by the organisation itself (not Free, not Enterprise)."""
        return self.monthly_cents not in (None, 0)


PLANS: tuple[Plan, ...] = (
    Plan(
        id="free",
        name="Free",
        rank=0,
        monthly_cents=0,
        summary="One homelab on the base kit, rehearsed on a small simulation.",
        entitlements=Entitlements(
            stacks=1,
            kombisim="basic",
            stackkits="base",
            team=False,
            sso=False,
            priority_support=False,
        ),
    ),
    Plan(
        id="pro",
        name="Pro",
        rank=1,
        monthly_cents=2900,
        summary="Five homelabs on every kit, full simulations.",
        entitlements=Entitlements(
            stacks=5,
            kombisim="full",
            stackkits="premium",
            team=False,
            sso=False,
            priority_support=False,
        ),
    ),
    Plan(
        id="team",
        name="Team",
        rank=2,
        monthly_cents=9900,
        summary="Twenty homelabs, run together with your team.",
        entitlements=Entitlements(
            stacks=20,
            kombisim="full",
            stackkits="premium",
            team=True,
            sso=False,
            priority_support=True,
        ),
    ),
    Plan(
        id="enterprise",
        name="Enterprise",
        rank=3,
        monthly_cents=None,
        summary="No limits, your own identity provider, a price agreed with us.",
        entitlements=Entitlements(
            stacks=None,
            kombisim="full",
            stackkits="premium",
            team=True,
            sso=True,
            priority_support=True,
        ),
    ),
)

_BY_ID: dict[str, Plan] = {plan.id: plan for plan in PLANS}
FREE: Plan = _BY_ID["free"]
# What an installation without billing has: every entitlement (billing is off, not in the way).
UNLIMITED: Entitlements = _BY_ID["enterprise"].entitlements


def plan_by_id(plan_id: str) -> Plan:
    """The plan named ``plan_id``; KeyError for an unknown one (callers validate input first)."""
    return _BY_ID[plan_id]


def is_plan_id(value: str) -> bool:
    return value in _BY_ID


def cheapest_plan(allows: Callable[[Entitlements], bool]) -> Plan:
    """The lowest-ranked plan whose entitlements satisfy ``allows``."""
    for plan in PLANS:
        if allows(plan.entitlements):
            return plan
    return PLANS[-1]
