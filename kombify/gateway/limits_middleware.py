"""Per-route-class rate limits on ``/v1``, per caller, with ``RateLimit-*`` headers and 429.

Route classes: ``auth`` (``/v1/auth/*``), ``write`` (any other ``/v1`` method but GET, HEAD
and OPTIONS), ``read`` (the rest of ``/v1``). Health probes, ``/docs``, ``/.well-known`` and
Stripe's webhooks (``/v1/billing/webhooks``, authenticated by their signature) are not limited.

The caller is found without the database: the digest of the bearer token or session cookie.
A credential this process saw accepted is counted as its principal (``user:<id>`` for
sessions and SSO tokens, so one person's sessions share a budget; ``key:<id>`` for an API
key). A credential not seen accepted yet, or refused, is counted as its client address: made-up
tokens cannot each open a fresh budget.
"""

from __future__ import annotations

from collections import OrderedDict

import anyio.to_thread
from starlette.datastructures import MutableHeaders
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kombify.accounts.principal import Actor
from kombify.accounts.tokens import digest
from kombify.api.principal import SESSION_COOKIE
from kombify.api.problems import problem
from kombify.errors import ServiceUnavailableError
from kombify.gateway.ratelimit import Decision, Limiter, MemoryLimiter
from kombify.gateway.rules import Rule

_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_KNOWN_MAX = 10_000  # credentials remembered per process (least recently used dropped)
# Stripe posts its webhooks from a few addresses, in bursts (and retries what was refused):
# the signature authenticates each one, and a 429 would only delay a plan change.
_UNLIMITED = frozenset({"/v1/billing/webhooks"})


def route_class(method: str, path: str) -> str | None:
    """The class whose rule limits ``method path``; None when it is not limited."""
    if path != "/v1" and not path.startswith("/v1/"):
        return None
    if path in _UNLIMITED:
        return None
    if path.startswith("/v1/auth/") or path == "/v1/auth":
        return "auth"
    return "read" if method in _SAFE else "write"


def credential(scope: Scope) -> str | None:
    """The bearer token or session cookie the request carries, if any."""
    authorization = ""
    cookie = ""
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"cookie":
            cookie = value.decode("latin-1")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if cookie:
        return cookie_parser(cookie).get(SESSION_COOKIE) or None
    return None


def budget_of(actor: Actor) -> str:
    """The budget a caller counts against: its API key, its user, else its kind."""
    if actor.api_key_id:
        return f"key:{actor.api_key_id}"
    if actor.user_id:
        return f"user:{actor.user_id}"
    return f"{actor.via}:{actor.organisation_id}"


def _headers(decision: Decision) -> list[tuple[str, str]]:
    return [
        ("RateLimit-Limit", str(decision.limit)),
        ("RateLimit-Remaining", str(decision.remaining)),
        ("RateLimit-Reset", str(decision.reset_s)),
    ]


def _whom(key: str) -> str:
    kind = key.split(":", 1)[0]
    names = {
        "key": "this API key",
        "user": "this account",
        "addr": "your address",
        "admin-token": "the admin token",
    }
    return names.get(kind, "this caller")


class RateLimits:
    """ASGI middleware counting each ``/v1`` request against its caller's class budget."""

    def __init__(self, app: ASGIApp, *, limiter: Limiter, rules: dict[str, Rule]) -> None:
        self.app = app
        self.limiter = limiter
        self.rules = rules
        self._known: OrderedDict[str, str] = OrderedDict()

    def _caller(self, scope: Scope) -> tuple[str, str | None]:
        """The budget key of the request, and its credential's digest (if any)."""
        token = credential(scope)
        token_digest = digest(token) if token else None
        if token_digest is not None and token_digest in self._known:
            self._known.move_to_end(token_digest)
            return self._known[token_digest], token_digest
        client = scope.get("client")
        return f"addr:{client[0] if client else 'unknown'}", token_digest

    def _remember(self, scope: Scope, token_digest: str | None) -> None:
        actor: Actor | None = scope.get("state", {}).get("actor")
        if token_digest is None or actor is None:
            return
        self._known[token_digest] = budget_of(actor)
        self._known.move_to_end(token_digest)
        while len(self._known) > _KNOWN_MAX:
            self._known.popitem(last=False)

    async def _hit(self, key: str, rule: Rule) -> Decision:
        if isinstance(self.limiter, MemoryLimiter):
            return self.limiter.hit(key, rule.limit, rule.window_s)
        # Other limiters ask a server (Redis): off the event loop.
        return await anyio.to_thread.run_sync(self.limiter.hit, key, rule.limit, rule.window_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        name = route_class(scope["method"], scope["path"])
        if name is None:
            await self.app(scope, receive, send)
            return
        rule = self.rules[name]
        who, token_digest = self._caller(scope)
        try:
            decision = await self._hit(f"{name}:{who}", rule)
        except ServiceUnavailableError as exc:
            response = problem(
                503, "Unavailable", exc.message, code=exc.code, instance=scope["path"]
            )
            await response(scope, receive, send)
            return
        headers = _headers(decision)
        if not decision.allowed:
            response = problem(
                429,
                "Too many requests",
                f"too many {name} requests from {_whom(who)}: {rule} allowed; "
                f"try again in {decision.reset_s} s",
                code="rate-limited",
                instance=scope["path"],
                headers=dict([*headers, ("Retry-After", str(decision.reset_s))]),
            )
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                for header, value in headers:
                    response_headers[header] = value
            await send(message)

        scope.setdefault("state", {})
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            self._remember(scope, token_digest)
