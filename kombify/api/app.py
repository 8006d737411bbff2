"""The FastAPI application: thin routes over the database and Temporal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from kombify import __version__
from kombify.api import dashboard, docs, openapi, problems
from kombify.api.activity_log import ActivityMiddleware
from kombify.api.auth import admin_token
from kombify.api.limits import RequestLimits
from kombify.api.principal import Authorized
from kombify.api.routes import PUBLIC_ROUTERS, ROUTERS, health
from kombify.api.usage_meter import UsageFlusher, UsageMiddleware
from kombify.billing.usage import ApiCallCounter
from kombify.db.migrate import upgrade
from kombify.gateway import middleware as gateway_middleware
from kombify.gateway.ratelimit import limiter_for
from kombify.identity.sso_verifier import SsoVerifier
from kombify.settings import Settings, get_settings


def create_app(settings: Settings | None = None, *, gateway: bool = True) -> FastAPI:
    """Build the app; the database is migrated when it starts serving.

    ``gateway=False`` leaves out the gateway middleware (rate limits, CORS, security headers,
    request log): only for measuring what it costs (benchmarks/api.py).
    """
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        upgrade(settings.resolved_database_url)
        flusher: UsageFlusher | None = getattr(app.state, "usage_flusher", None)
        if flusher is not None:
            flusher.start()
        yield
        if flusher is not None:
            await flusher.stop()
        app.state.temporal = None
        close = getattr(app.state.limiter, "close", None)
        if close is not None:
            close()

    app = FastAPI(
        title="kombify",
        version=__version__,
        summary="Run a homelab from one file: validate, provision, deploy and heal, durably.",
        lifespan=lifespan,
        docs_url=None,  # served by kombify.api.docs with packaged assets, not from a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.temporal = None
    app.state.admin_token = admin_token(settings, create=True)
    # A portal's SSO tokens are accepted only when this instance is configured to trust it.
    app.state.sso_verifier = SsoVerifier.of(settings)
    problems.install(app)
    app.add_middleware(ActivityMiddleware, database_url=settings.resolved_database_url)
    app.add_middleware(RequestLimits)
    app.state.usage_flusher = None
    if settings.billing_enabled:  # API calls are metered for billing (kombify.api.usage_meter)
        counter = ApiCallCounter()
        app.add_middleware(UsageMiddleware, counter=counter)
        app.state.usage_flusher = UsageFlusher(
            counter, settings.resolved_database_url, settings.usage_flush_seconds
        )
    app.state.limiter = limiter_for(settings)
    if gateway:
        gateway_middleware.install(app, settings, app.state.limiter)
    for router in ROUTERS:
        # Health probes answer anyone (load balancers, `kombify status`); every other route
        # knows its caller and checks the role (kombify.api.principal).
        public = router is health.router
        app.include_router(router, dependencies=[] if public else [Authorized])
    for router in PUBLIC_ROUTERS:
        # Sign-up, login and the like: each route says itself whom it needs.
        app.include_router(router)
    docs.install(app)
    openapi.install(app)
    # Last: the dashboard answers GETs for every path the API does not own (SPA fallback).
    dashboard.install(app, settings)
    return app
