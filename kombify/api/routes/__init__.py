"""Every router the API serves; a feature adds its router to ``ROUTERS``."""

from __future__ import annotations

from fastapi import APIRouter

from kombify.api.routes import (
    certificates,
    deployments,
    domains,
    healing,
    health,
    nodes,
    oidc,
    sim_runs,
    sims,
    stacks,
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
]

PUBLIC_ROUTERS: list[APIRouter] = []
"""Routers whose routes authenticate one by one (sign-up, login, JWKS …)."""

PUBLIC_ROUTERS.append(oidc.router)  # login with OpenID Connect and GitHub (docs/oidc.md)
