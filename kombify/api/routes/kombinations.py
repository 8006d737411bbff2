"""Check a kombination file without storing it: the editor's validate-as-you-type
(``kombify validate`` over the API; docs/specs.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from kombify.specs import validate_text
from kombify.specs.source import MAX_BYTES

router = APIRouter(prefix="/v1", tags=["stacks"])


class KombinationSource(BaseModel):
    """A kombination file's text."""

    source: str = Field(max_length=MAX_BYTES, description="The YAML text (kind: Kombination).")
    filename: str = Field(
        default="kombination.yaml", max_length=255, description="Named in error messages."
    )


@router.post("/kombinations/validate")
def validate_kombination(body: KombinationSource, request: Request) -> dict[str, Any]:
    """Check a kombination file against the schema and its StackKit's rules; nothing is
    stored. ``errors`` lists every problem with its path and line, sorted by line.

    It changes nothing, so it is not written to the activity log (an editor calls it as
    one types).
    """
    request.state.activity_recorded = True
    problems = validate_text(body.source, filename=body.filename)
    return {"valid": not problems, "errors": [p.to_dict() for p in problems]}
