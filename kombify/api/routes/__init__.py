"""Every router the API serves; a feature adds its router to ``ROUTERS``."""

from __future__ import annotations

from fastapi import APIRouter

from kombify.api.routes import (
    activity,
    admin,
    api_keys,
    auth,
    billing,
    billing_usage,
    certificates,
    deployments,
    domains,
    graph,
    healing,
    health,
    history,
    kombinations,
    me,
    mfa,
    nodes,
    oidc,
    orgs,
    plans,
    recovery,
    schedules,
    services,
    setup,
    sim_runs,
    sims,
    sso,
    stacks,
    tools,
    workflow_runs,
)

ROUTERS: list[APIRouter] = [
    health.router,
    stacks.router,
    deployments.router,
    sims.router,
    certificates.router,
    sim_runs.router,
    nodes.router,
    healing.router,
    domains.router,
    graph.router,
    me.router,
    orgs.router,
    api_keys.router,
    activity.router,
    schedules.router,
    services.router,
    history.router,
    setup.router,
]
ROUTERS.append(workflow_runs.router)  # owners' workflow files (docs/workflows.md)
ROUTERS.append(kombinations.router)  # validate a kombination without storing it (the editor)
ROUTERS.append(billing_usage.router)  # metered usage this month (docs/billing.md)
ROUTERS.append(billing.router)  # Stripe Checkout, portal and invoices (docs/billing.md)
ROUTERS.append(plans.router)  # an organisation's plan, limits and usage (docs/billing.md)

PUBLIC_ROUTERS: list[APIRouter] = [
    auth.router,
    orgs.self_router,
    me.self_router,
    admin.router,
    mfa.router,
    recovery.router,
    setup.public_router,
]
"""Routers whose routes authenticate one by one (sign-up, login, JWKS …)."""

# SSO (JWKS, tokens, keys) and the tool bridge authenticate route by route.
PUBLIC_ROUTERS += [sso.router, tools.router]
PUBLIC_ROUTERS.append(oidc.router)  # login with OpenID Connect and GitHub (docs/oidc.md)
PUBLIC_ROUTERS.append(plans.public_router)  # the price list (docs/billing.md)
# Interactive exec is a WebSocket: it authenticates itself (kombify.api.routes.services).
PUBLIC_ROUTERS.append(services.ws_router)
