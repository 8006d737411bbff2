"""What the dashboard's first-run wizard needs beyond the other routes (docs/dashboard.md).

``GET /v1/setup`` answers anyone, and only "setup needed: yes/no": whether the installation
still waits for its first owner (then the admin token in ``$KOMBIFY_HOME/admin-token`` makes
one, ``POST /v1/admin/owner``). ``GET /v1/stackkits`` and ``POST /v1/kombinations/validate`` let a
form build a kombination from a kit and show each problem at its field while one types.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from kombify.api.deps import SessionDep
from kombify.api.principal import admin_token_retired, first_owner_exists
from kombify.stackkits.library import KIT_NAMES, Kit, load_library
from kombify.stackkits.placement import kit_services

# Answers anyone: the dashboard asks it before anyone signed in.
public_router = APIRouter(tags=["setup"])
# Signed-in callers: viewers and up read the kits.
router = APIRouter(prefix="/v1", tags=["stacks"])


class SetupState(BaseModel):
    """Whether this installation still waits for its first owner (nothing else)."""

    setup_needed: bool = Field(
        description="True until the first owner exists; the admin token makes one "
        "(POST /v1/admin/owner, `kombify admin create-owner`)."
    )


@public_router.get("/v1/setup")
def setup_state(request: Request, db: SessionDep) -> SetupState:
    """Whether the first-run setup is still to do: yes until the first owner exists."""
    done = admin_token_retired(request, db) or first_owner_exists(db)
    return SetupState(setup_needed=not done)


def _kit_public(kit: Kit) -> dict[str, Any]:
    catalog = load_library().catalog
    services = [
        {
            "name": name,
            "use": entry.use,
            "description": catalog[entry.use].description,
            "default": entry.default,
        }
        for name, entry in kit_services(kit.name).items()
    ]
    limits = kit.constraints
    return {
        "name": kit.name,
        "version": kit.version,
        "description": kit.description,
        "platform": kit.platform,
        "variants": kit.variants,
        "default_variant": kit.default_variant,
        "roles": [{"name": n, "description": r.description} for n, r in kit.roles.items()],
        "default_role": kit.default_role,
        "nodes": {"min": limits.nodes.min, "max": limits.nodes.max},
        "role_counts": {n: c.model_dump() for n, c in limits.roles.items()},
        "requires_local": limits.requires_local,
        "requires_cloud": limits.requires_cloud,
        "requires_vpn": limits.requires_vpn,
        "services": services,
    }


@router.get("/stackkits")
def list_stackkits() -> dict[str, Any]:
    """The StackKits a kombination can use: roles, node counts and the services each offers."""
    lib = load_library()
    data = [_kit_public(lib.kit(name)) for name in KIT_NAMES]
    return {"data": data, "count": len(data)}
