"""Check a kombination file without storing it: the editor's validate-as-you-type
(``kombify validate`` over the API; docs/specs.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from kombify.api.deps import SessionDep, SettingsDep
from kombify.api.principal import OrgDep
from kombify.billing import entitlements
from kombify.specs import validate_text
from kombify.specs.source import MAX_BYTES, load_source

router = APIRouter(prefix="/v1", tags=["stacks"])


class KombinationSource(BaseModel):
    """A kombination file's text."""

    source: str = Field(max_length=MAX_BYTES, description="The YAML text (kind: Kombination).")
    filename: str = Field(
        default="kombination.yaml", max_length=255, description="Named in error messages."
    )


def _stackkit(text: str) -> str | None:
    """The file's ``spec.stackkit`` when it can be read at all."""
    try:
        data = load_source(text).data
    except RecursionError:
        return None
    spec = data.get("spec") if isinstance(data, dict) else None
    kit = spec.get("stackkit") if isinstance(spec, dict) else None
    return kit if isinstance(kit, str) and kit.strip() else None


@router.post(
    "/kombinations/validate",
    responses={
        402: {
            "description": "The file is valid but its StackKit is beyond the organisation's "
            "plan: `errors` names `spec.stackkit` and its line, `plan` the plan that allows it",
            "content": {"application/problem+json": {}},
        }
    },
)
def validate_kombination(
    body: KombinationSource,
    request: Request,
    session: SessionDep,
    org: OrgDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Check a kombination file against the schema and its StackKit's rules; nothing is
    stored. ``errors`` lists every problem with its path and line, sorted by line.

    The StackKit is also checked against the caller's organisation's plan: a file that is
    valid but names a kit beyond the plan is answered 402 at ``spec.stackkit`` (as creating
    the stack would be); an invalid one lists that problem among the others.

    It changes nothing, so it is not written to the activity log (an editor calls it as
    one types).
    """
    request.state.activity_recorded = True
    problems = [p.to_dict() for p in validate_text(body.source, filename=body.filename)]
    kit = _stackkit(body.source)
    refusal = None
    if kit is not None:
        current = entitlements.effective_plan(session, org, settings)
        refusal = entitlements.stackkit_refusal(current, org, kit, source=body.source)
    if refusal is not None and not any(p["path"] == entitlements.STACKKIT_PATH for p in problems):
        # (A kit the library does not know is reported as such, not as beyond the plan.)
        if not problems:
            raise refusal
        problems = sorted(
            problems + refusal.errors,
            key=lambda p: (p["line"] is None, p["line"] or 0, str(p["path"])),
        )
    return {"valid": not problems, "errors": problems}
