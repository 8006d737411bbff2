"""Errors as ``application/problem+json`` (RFC 9457): a short sentence and the field at fault.

Every error the app answers goes through here, including the framework's own (404, 405,
malformed JSON) and unexpected exceptions, and the OpenAPI document says so for each route.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from kombify.errors import KombifyError, SpecError

PROBLEM_JSON = "application/problem+json"
_TYPE_BASE = "https://kombify.io/problems/"


log = logging.getLogger(__name__)


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    code: str,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response; ``extra`` members (e.g. ``errors``) are added as is."""
    body: dict[str, Any] = {
        "type": _TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc[1:] if loc and loc[0] in ("body", "query", "path") else loc:
        parts.append(f"[{item}]" if isinstance(item, int) else f".{item}" if parts else str(item))
    return "".join(parts)


async def _kombify_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KombifyError)
    extra: dict[str, Any] = {}
    problems = getattr(exc, "problems", None) if isinstance(exc, SpecError) else None
    if problems:
        extra["errors"] = [{"path": p.path, "line": p.line, "message": p.message} for p in problems]
    elif exc.errors:
        extra["errors"] = exc.errors
    extra.update(getattr(exc, "problem_fields", None) or {})
    title = getattr(exc, "title", None) or type(exc).__name__.removesuffix("Error") or "Error"
    return problem(
        exc.status,
        title,
        exc.message,
        code=exc.code,
        instance=request.url.path,
        headers=getattr(exc, "headers", None),
        **extra,
    )


def _message(error: dict[str, Any]) -> str:
    # Our own validators (kombify.names) raise ValueError with a full sentence; pydantic
    # prefixes it with "Value error, ", which says nothing to the user.
    return str(error.get("msg", "")).removeprefix("Value error, ")


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    broken = next((e for e in exc.errors() if e.get("type") == "json_invalid"), None)
    if broken is not None:  # not a wrong field but no JSON at all: the request is malformed
        position = broken.get("loc", ("body", 0))[-1]
        reason = (broken.get("ctx") or {}).get("error", "invalid JSON")
        return problem(
            400,
            "Malformed request",
            f"the body is not valid JSON: {reason} at character {position}",
            code="malformed-request",
            instance=request.url.path,
        )
    errors = [
        {"path": _field_path(tuple(e.get("loc", ()))), "message": _message(e)} for e in exc.errors()
    ]
    first = errors[0] if errors else {"path": "", "message": "invalid request"}
    detail = f"{first['path']}: {first['message']}" if first["path"] else first["message"]
    return problem(
        422,
        "Invalid request",
        detail,
        code="invalid-request",
        instance=request.url.path,
        errors=errors,
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path.

    Starlette's own ``Allow`` names only the first route whose path matches, while a path
    such as ``/v1/stacks`` is served by one route per method; so each method is tried
    against the routes (through ``matches``, the routes' public interface).
    """
    allowed: list[str] = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(r.matches(scope)[0] is Match.FULL for r in request.app.router.routes):
            allowed.append(method)
    return allowed


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    detail = str(exc.detail)
    if exc.status_code == 405:
        allowed = allowed_methods(request) or headers.get("Allow", "").split(", ")
        headers["Allow"] = ", ".join(allowed)
        detail = f"{request.method} is not allowed on {request.url.path}: use {headers['Allow']}"
    elif exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.url.path}: the routes are listed at /docs"
    return problem(
        exc.status_code,
        str(exc.detail),
        detail,
        code=f"http-{exc.status_code}",
        instance=request.url.path,
        headers=headers,
    )


def internal_error(path: str) -> JSONResponse:
    """The 500 answered for an unexpected exception (its text is for the log only)."""
    return problem(
        500,
        "Internal error",
        "the server failed unexpectedly; its log has the details",
        code="internal-error",
        instance=path,
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # The exception text may hold anything (paths, values): it goes to the log, not the client.
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return internal_error(request.url.path)


def install(app: FastAPI) -> None:
    """Route every error the app can raise through problem+json."""
    app.add_exception_handler(KombifyError, _kombify_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
