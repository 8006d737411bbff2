"""The gateway's middleware, in the order a request meets it."""

from __future__ import annotations

from fastapi import FastAPI

from kombify.gateway import cors
from kombify.gateway.limits_middleware import RateLimits
from kombify.gateway.ratelimit import Limiter
from kombify.gateway.request_log import RequestLog
from kombify.gateway.security_headers import SecurityHeaders
from kombify.settings import Settings


def install(app: FastAPI, settings: Settings, limiter: Limiter) -> None:
    """Add security headers, request log, CORS and rate limits (outermost first).

    Starlette runs the middleware added last first: headers wrap everything (429s and CORS
    answers included), the log sees every status, CORS answers preflights before they count
    against a budget and puts its headers on 429s so browser pages can read them.
    """
    app.add_middleware(RateLimits, limiter=limiter, rules=settings.rate_limit_rules)
    cors.install(app, settings.cors_origin_list)
    app.add_middleware(RequestLog)
    app.add_middleware(SecurityHeaders)
