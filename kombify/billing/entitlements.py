"""What an organisation may do: the one place every route and workflow asks.

The effective plan comes from ``org_billing`` (kombify.db.billing_tables): no row is Free, an
unknown plan, a cancelled subscription or a grace period that ran out are Free too. With
billing off (no ``KOMBIFY_STRIPE_API_KEY``) every organisation has every entitlement and no
check refuses anything.

Each ``check_*`` function raises :class:`~kombify.errors.PaymentRequiredError` (402) naming the
limit, what the organisation uses and the cheapest plan that allows it; nothing is changed
before a check passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, func, select

from kombify.billing.plans import (
    BASE_STACKKITS,
    FREE,
    UNLIMITED,
    Entitlements,
    Plan,
    cheapest_plan,
    is_plan_id,
    plan_by_id,
)
from kombify.db.account_tables import Membership
from kombify.db.billing_tables import OrgBilling
from kombify.db.models import Organisation, Simulation, Stack, utcnow
from kombify.errors import PaymentRequiredError
from kombify.settings import Settings, get_settings

SELF_HOSTED_ID = "self-hosted"
SELF_HOSTED_NAME = "Self-hosted"
STACKKIT_PATH = "spec.stackkit"


@dataclass(frozen=True)
class OrgPlan:
    """An organisation's effective plan and what it allows.

    Attributes:
        billing: Whether billing is on for the installation (off: every entitlement).
        plan_id: ``free``, ``pro``, ``team``, ``enterprise``, or ``self-hosted`` (billing off).
        plan_name: The plan's name as shown to people.
        entitlements: What the plan allows.
        row: The organisation's ``org_billing`` row, if it has one.
    """

    billing: bool
    plan_id: str
    plan_name: str
    entitlements: Entitlements
    row: OrgBilling | None

    @property
    def status(self) -> str:
        """The subscription's status (``none`` without one; ``self-hosted`` billing off)."""
        if not self.billing:
            return SELF_HOSTED_ID
        return self.row.status if self.row is not None else "none"


def _row_plan(row: OrgBilling | None) -> Plan:
    if row is None or not is_plan_id(row.plan) or row.status == "canceled":
        return FREE
    # The workflow moves the organisation to Free when its grace period ends; should that
    # be late (a worker down), the time that passed decides, not the record.
    if row.grace_until is not None and row.grace_until <= utcnow():
        return FREE
    return plan_by_id(row.plan)


def effective_plan(session: Session, org: Organisation, settings: Settings) -> OrgPlan:
    """The organisation's plan and entitlements as every check sees them."""
    if not settings.billing_enabled:
        return OrgPlan(False, SELF_HOSTED_ID, SELF_HOSTED_NAME, UNLIMITED, None)
    row = session.get(OrgBilling, org.id)
    plan = _row_plan(row)
    return OrgPlan(True, plan.id, plan.name, plan.entitlements, row)


# --- usage -----------------------------------------------------------------------------------


def stack_count(session: Session, org: Organisation) -> int:
    """How many stacks the organisation has."""
    query = select(func.count()).select_from(Stack).where(Stack.organisation_id == org.id)
    return int(session.exec(query).one())


def member_count(session: Session, org: Organisation) -> int:
    """How many people belong to the organisation (its owner included)."""
    query = select(func.count()).select_from(Membership).where(Membership.organisation_id == org.id)
    return int(session.exec(query).one())


def simulation_names(session: Session, org: Organisation) -> list[str]:
    """The simulations the organisation made through the API and has not deleted."""
    rows = session.exec(
        select(Simulation.name)
        .where(Simulation.organisation_id == org.id)
        .order_by(Simulation.name)
    ).all()
    return list(rows)


def _by_age(session: Session, org: Organisation) -> list[Stack]:
    return list(
        session.exec(
            select(Stack)
            .where(Stack.organisation_id == org.id)
            .order_by(col(Stack.created_at), col(Stack.id))
        ).all()
    )


def frozen_stacks(
    session: Session, org: Organisation, settings: Settings | None = None
) -> list[Stack]:
    """The stacks beyond the plan's limit (the newest ones), oldest first.

    They are kept as they are (nothing is deleted) but refuse new deploys until the
    organisation upgrades or deletes stacks; destroying them is allowed.
    """
    limit = effective_plan(session, org, settings or get_settings()).entitlements.stacks
    if limit is None:
        return []
    return _by_age(session, org)[limit:]


# --- checks ----------------------------------------------------------------------------------


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _limit_words(limit: int | None, word: str) -> str:
    return f"unlimited {word}s" if limit is None else _plural(limit, word)


def _upgrade(allows: Callable[[Entitlements], bool]) -> Plan:
    return cheapest_plan(allows)


def check_new_stack(session: Session, org: Organisation, settings: Settings) -> None:
    """Refuse a new stack beyond the plan's stack limit."""
    current = effective_plan(session, org, settings)
    limit = current.entitlements.stacks
    if limit is None:
        return
    used = stack_count(session, org)
    if used < limit:
        return
    needed = used + 1
    plan = _upgrade(lambda e: e.stacks is None or e.stacks >= needed)
    raise PaymentRequiredError(
        f"the {current.plan_name} plan allows {_plural(limit, 'stack')} and `{org.slug}` has "
        f"{used}: the {plan.name} plan allows {_limit_words(plan.entitlements.stacks, 'stack')}; "
        "upgrade, or delete a stack first",
        plan=plan.id,
        entitlement="stacks",
    )


def kit_name(stackkit: str) -> str:
    """The kit a ``spec.stackkit`` value names (without its ``@version``)."""
    return stackkit.split("@", 1)[0].strip()


def stackkit_allowed(entitlements: Entitlements, stackkit: str) -> bool:
    """Whether ``stackkit`` is within the entitlements' StackKit level."""
    return entitlements.stackkits == "premium" or kit_name(stackkit) in BASE_STACKKITS


def stackkit_line(source: str | None) -> int | None:
    """The line of ``spec.stackkit`` in a kombination file's text (None: unknown)."""
    if source is None:
        return None
    from kombify.specs.source import load_source

    try:
        return load_source(source).lines.get(STACKKIT_PATH)
    except RecursionError:
        return None


def stackkit_refusal(
    current: OrgPlan, org: Organisation, stackkit: str, *, source: str | None
) -> PaymentRequiredError | None:
    """The refusal of ``stackkit`` for ``current``'s plan, or None when it is allowed."""
    if stackkit_allowed(current.entitlements, stackkit):
        return None
    kit = kit_name(stackkit)
    plan = _upgrade(lambda e: stackkit_allowed(e, stackkit))
    base = ", ".join(sorted(BASE_STACKKITS))
    message = (
        f"StackKit `{kit}` is not in the {current.plan_name} plan of `{org.slug}` "
        f"(it includes {base} only): the {plan.name} plan allows every kit"
    )
    errors: list[dict[str, Any]] = [
        {"path": STACKKIT_PATH, "line": stackkit_line(source), "message": message}
    ]
    return PaymentRequiredError(
        f"{STACKKIT_PATH}: {message}", plan=plan.id, entitlement="stackkits", errors=errors
    )


def check_stackkit(
    session: Session,
    org: Organisation,
    settings: Settings,
    *,
    stackkit: str,
    source: str | None = None,
) -> None:
    """Refuse a StackKit beyond the plan's level, at ``spec.stackkit`` of ``source``."""
    refusal = stackkit_refusal(effective_plan(session, org, settings), org, stackkit, source=source)
    if refusal is not None:
        raise refusal


def check_deploy(
    session: Session,
    org: Organisation,
    settings: Settings,
    *,
    stack: Stack,
    stackkit: str,
    source: str | None = None,
) -> None:
    """Refuse a deploy of a frozen stack, or of a StackKit beyond the plan.

    ``stackkit`` is the kit of the revision the run deploys; ``source`` its file when the
    run brings a new one (so the refusal names its line).
    """
    current = effective_plan(session, org, settings)
    limit = current.entitlements.stacks
    if limit is not None:
        ordered = _by_age(session, org)
        frozen = [s.id for s in ordered[limit:]]
        if stack.id in frozen:
            plan = _upgrade(lambda e: e.stacks is None or e.stacks >= len(ordered))
            raise PaymentRequiredError(
                f"stack `{stack.name}` is frozen: the {current.plan_name} plan allows "
                f"{_plural(limit, 'stack')} and `{org.slug}` has {len(ordered)}, so the newest "
                f"{len(frozen)} take no new deploys (nothing was deleted; destroy still works). "
                f"The {plan.name} plan allows {_limit_words(plan.entitlements.stacks, 'stack')}: "
                "upgrade, or destroy and delete stacks",
                plan=plan.id,
                entitlement="stacks",
            )
    refusal = stackkit_refusal(current, org, stackkit, source=source)
    if refusal is not None:
        raise refusal


def check_simulation_nodes(
    session: Session, org: Organisation, settings: Settings, *, nodes: int
) -> None:
    """Refuse a simulation of more nodes than KombiSim basic allows."""
    current = effective_plan(session, org, settings)
    most = current.entitlements.simulation_nodes
    if most is None or nodes <= most:
        return
    plan = _upgrade(lambda e: e.simulation_nodes is None or e.simulation_nodes >= nodes)
    raise PaymentRequiredError(
        f"KombiSim basic in the {current.plan_name} plan of `{org.slug}` allows simulations of "
        f"up to {_plural(most, 'node')} and this one has {nodes}: the {plan.name} plan has "
        "full KombiSim",
        plan=plan.id,
        entitlement="kombisim",
    )


def check_simulation(
    session: Session,
    org: Organisation,
    settings: Settings,
    *,
    name: str,
    nodes: int,
    live: Callable[[], Iterable[str]] | None = None,
) -> None:
    """Refuse a simulation beyond KombiSim basic: too many nodes, or one too many at once.

    Args:
        name: The simulation to make (making one that exists again is not another one).
        nodes: How many nodes it has.
        live: Lists the simulations that still exist, asked only when the plan limits them
            (None: every simulation recorded for the organisation counts).
    """
    check_simulation_nodes(session, org, settings, nodes=nodes)
    current = effective_plan(session, org, settings)
    ent = current.entitlements
    if ent.simulations is None:
        return
    alive = None if live is None else set(live())
    others = [
        n for n in simulation_names(session, org) if n != name and (alive is None or n in alive)
    ]
    if len(others) < ent.simulations:
        return
    plan = _upgrade(lambda e: e.simulations is None or e.simulations > len(others))
    raise PaymentRequiredError(
        f"KombiSim basic in the {current.plan_name} plan allows "
        f"{_plural(ent.simulations, 'simulation')} at a time and `{org.slug}` has "
        f"{len(others)} ({', '.join(f'`{n}`' for n in others)}): delete it first, or the "
        f"{plan.name} plan has full KombiSim",
        plan=plan.id,
        entitlement="kombisim",
    )


def check_team(session: Session, org: Organisation, settings: Settings, *, action: str) -> None:
    """Refuse members beyond the owner without team collaboration (``action``: what for)."""
    current = effective_plan(session, org, settings)
    if current.entitlements.team:
        return
    plan = _upgrade(lambda e: e.team)
    members = member_count(session, org)
    raise PaymentRequiredError(
        f"{action}: the {current.plan_name} plan of `{org.slug}` has no team collaboration "
        f"(no members beyond the owner; it has {_plural(members, 'member')}): the {plan.name} "
        "plan allows a team",
        plan=plan.id,
        entitlement="team",
    )


# --- the API's view --------------------------------------------------------------------------


def entitlements_public(ent: Entitlements) -> dict[str, Any]:
    """The JSON shape of an entitlement set (docs/billing.md)."""
    return {
        "stacks": ent.stacks,
        "kombisim": ent.kombisim,
        "simulations": ent.simulations,
        "simulation_nodes": ent.simulation_nodes,
        "stackkits": ent.stackkits,
        "team": ent.team,
        "sso": ent.sso,
        "priority_support": ent.priority_support,
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def org_entitlements(session: Session, org: Organisation, settings: Settings) -> dict[str, Any]:
    """``GET /v1/orgs/{org}/entitlements``: plan, limits, usage and frozen stacks."""
    current = effective_plan(session, org, settings)
    row = current.row
    limit = current.entitlements.stacks
    frozen = [] if limit is None else [s.name for s in _by_age(session, org)[limit:]]
    return {
        "billing": current.billing,
        "plan": {"id": current.plan_id, "name": current.plan_name},
        "status": current.status,
        "entitlements": entitlements_public(current.entitlements),
        "usage": {
            "stacks": stack_count(session, org),
            "simulations": len(simulation_names(session, org)),
            "members": member_count(session, org),
        },
        "frozen_stacks": frozen,
        "current_period_end": _iso(row.current_period_end) if row else None,
        "trial_end": _iso(row.trial_end) if row else None,
        "grace_until": _iso(row.grace_until) if row else None,
        "pending_plan": row.pending_plan if row else None,
        "cancel_at_period_end": bool(row.cancel_at_period_end) if row else False,
    }
