"""The OpenAPI document, saying for every route that its errors are problem+json."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from kombify.api.problems import PROBLEM_JSON

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An error, as RFC 9457 problem details.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "URI naming the kind of problem."},
        "title": {"type": "string", "description": "Short name of the kind of problem."},
        "status": {"type": "integer", "description": "The HTTP status code."},
        "detail": {"type": "string", "description": "What went wrong, in one sentence."},
        "instance": {"type": "string", "description": "The request path."},
        "errors": {
            "type": "array",
            "description": "Every problem found, each with the field at fault.",
            "items": {
                "type": "object",
                "properties": {
                    "path": {"type": "string"},
                    "line": {"type": ["integer", "null"]},
                    "message": {"type": "string"},
                },
            },
        },
    },
}

_REF = {"$ref": "#/components/schemas/Problem"}
_BUILT_IN = ("HTTPValidationError", "ValidationError")


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": _REF}}}


def _document_errors(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    if "requestBody" in operation:
        responses.setdefault("400", _problem("The body is not JSON, or not valid Unicode"))
    if operation.get("security"):
        responses.setdefault("401", _problem("No token, or a wrong one"))
    if "requestBody" in operation or operation.get("parameters"):
        responses.setdefault("422", _problem("A parameter or field is invalid"))
    responses["default"] = _problem("Any other error")
    for code, response in responses.items():
        if code == "default" or int(code) >= 400:
            if code == "422" and response.get("description") == "Validation Error":
                response["description"] = "A parameter or field is invalid (errors name each)"
            response["content"] = {PROBLEM_JSON: {"schema": _REF}}


def install(app: FastAPI) -> None:
    """Serve an OpenAPI document whose every error response is problem+json."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        for path in document.get("paths", {}).values():
            for operation in path.values():
                _document_errors(operation)
        schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
        for name in _BUILT_IN:  # FastAPI's application/json 422 body, which kombify never sends
            schemas.pop(name, None)
        schemas["Problem"] = PROBLEM_SCHEMA
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
