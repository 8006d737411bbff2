"""Stripe's error answers: ``{"error": {"type", "message", "param", "code"}}`` and a status."""

from __future__ import annotations

from typing import Any


class StripeApiError(Exception):
    """An error the stand-in answers as Stripe would.

    ``saved`` says whether an idempotency key keeps this answer: Stripe saves no result when
    the parameters fail validation before the endpoint starts executing, so a corrected retry
    with the same key runs.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",  # noqa: A002 - Stripe's field name
        code: str | None = None,
        param: str | None = None,
        saved: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.saved = saved

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param is not None:
            error["param"] = self.param
        return {"error": error}


def missing(kind: str, object_id: str, param: str = "id") -> StripeApiError:
    """404 ``resource_missing``, worded as Stripe words it."""
    return StripeApiError(
        404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param
    )


def missing_param(param: str) -> StripeApiError:
    return StripeApiError(
        400, f"Missing required param: {param}.", code="parameter_missing", param=param,
        saved=False,
    )  # fmt: skip


def invalid(param: str, message: str) -> StripeApiError:
    return StripeApiError(400, message, code="parameter_invalid", param=param, saved=False)


def unknown_param(param: str) -> StripeApiError:
    return StripeApiError(
        400, f"Received unknown parameter: {param}", code="parameter_unknown", param=param,
        saved=False,
    )  # fmt: skip
