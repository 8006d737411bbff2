"""Errors as ``application/problem+json`` (RFC 9457): a short sentence and the field at fault."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kombify.errors import KombifyError, SpecError

PROBLEM_JSON = "application/problem+json"
_TYPE_BASE = "https://kombify.io/problems/"


def problem(
    status: int, title: str, detail: str, *, code: str, instance: str | None = None, **extra: Any
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
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


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
    title = type(exc).__name__.removesuffix("Error") or "Error"
    return problem(
        exc.status, title, exc.message, code=exc.code, instance=request.url.path, **extra
    )


def _message(error: dict[str, Any]) -> str:
    # Our own validators (kombify.names) raise ValueError with a full sentence; pydantic
    # prefixes it with "Value error, ", which says nothing to the user.
    return str(error.get("msg", "")).removeprefix("Value error, ")


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"path": _field_path(tuple(e.get("loc", ()))), "message": _message(e)}
        for e in exc.errors()
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


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem(
        exc.status_code,
        str(exc.detail),
        str(exc.detail),
        code=f"http-{exc.status_code}",
        instance=request.url.path,
    )


def install(app: FastAPI) -> None:
    """Route every error the app can raise through problem+json."""
    app.add_exception_handler(KombifyError, _kombify_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
