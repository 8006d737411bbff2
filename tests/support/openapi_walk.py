"""Walking the OpenAPI document: every operation, with well-formed path values and a body.

Tests that must cover every route (roles, tenant isolation) walk ``/openapi.json`` rather than
a list of their own, so a route added later is covered without anyone remembering to.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

MUTATING = frozenset({"post", "put", "patch", "delete"})
_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Operation:
    """One method on one path of the document."""

    method: str
    path: str
    spec: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path

    @property
    def path_params(self) -> list[str]:
        return _PARAM.findall(self.path)

    @property
    def has_body(self) -> bool:
        return "requestBody" in self.spec

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path}"


def operations(document: dict[str, Any]) -> Iterator[Operation]:
    """Every operation of the document, in its order."""
    for path, item in document["paths"].items():
        for method, spec in item.items():
            yield Operation(method, path, spec)


def url(op: Operation, value: Callable[[Operation, str], str]) -> str:
    """The operation's path with each parameter replaced by ``value(op, name)``."""
    return _PARAM.sub(lambda m: value(op, m.group(1)), op.path)


def kombination(name: str) -> str:
    """A minimal valid kombination file: one simulated node, the kit's defaults."""
    return (
        "apiVersion: kombify.io/v1\nkind: Kombination\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n  stackkit: base-homelab\n"
        "  nodes:\n    - {name: box, provider: sim}\n"
    )


TEMPLATE = "name: tpl\ngroups:\n  - name: lan\n    nodes:\n      - {name: server, role: server}\n"


def body_for(op: Operation, *, stack: str, simulation: str) -> dict[str, Any] | None:
    """A plausible, valid body for ``op`` (one the route would act on if allowed).

    Unknown operations with a body get ``{}``: a test expecting the route to act then sees the
    422 and says which route needs a body here.
    """
    if not op.has_body:
        return None
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("post", "/v1/stacks"): {"source": kombination(stack)},
        ("put", "/v1/stacks/{name}"): {"source": kombination(stack)},
        ("post", "/v1/stacks/{name}/deployments"): {"auto_approve": True, "simulate": True},
        ("post", "/v1/stacks/{name}/destroy"): {"force": False},
        ("post", "/v1/stacks/{name}/rollback"): {"to": 1, "auto_approve": True},
        ("post", "/v1/simulations"): {"name": simulation, "nodes": 1},
        ("post", "/v1/simulations/templates"): {"source": TEMPLATE},
        ("post", "/v1/simulation-runs"): {"name": simulation, "nodes": 1, "ttl_seconds": 60},
        ("post", "/v1/certificates/renew"): {"within_days": 30},
        ("post", "/v1/stacks/{name}/nodes/{node}/trust"): {"fingerprint": "SHA256:" + "A" * 43},
        ("post", "/v1/orgs"): {"slug": "new-org", "name": "New"},
        ("patch", "/v1/orgs/{org}"): {"name": "Renamed"},
        ("patch", "/v1/orgs/{org}/members/{user_id}"): {"role": "viewer"},
        ("post", "/v1/orgs/{org}/invitations"): {"email": "new@example.org", "role": "member"},
        ("post", "/v1/orgs/{org}/billing/checkout"): {"plan": "pro"},
        ("post", "/v1/api-keys"): {"name": "ci", "scope": "read"},
        ("post", "/v1/auth/signup"): {"email": "new@example.org", "password": "x" * 16},
        ("post", "/v1/auth/login"): {"email": "new@example.org", "password": "x" * 16},
        ("post", "/v1/auth/reauth"): {"password": "x" * 16},
        ("post", "/v1/auth/password"): {"current_password": "x" * 16, "new_password": "y" * 16},
        ("post", "/v1/invitations/accept"): {"token": "kfi_" + "0" * 40},
        ("post", "/v1/admin/owner"): {"email": "new@example.org", "password": "x" * 16},
        ("patch", "/v1/me"): {"name": "Renamed"},
        ("post", "/v1/auth/mfa/totp/confirm"): {"code": "123456"},
        ("put", "/v1/orgs/{org}/mfa"): {"required": True},
        ("post", "/v1/auth/password-reset"): {"email": "new@example.org"},
        ("post", "/v1/auth/password-reset/confirm"): {"token": "x" * 40, "password": "y" * 16},
        ("post", "/v1/auth/verify-email"): {"token": "x" * 40},
        ("post", "/v1/sso/tokens"): {"audience": "stack"},
        ("post", "/v1/auth/oidc/cli-exchange"): {"code": "x" * 40},
        ("put", "/v1/admin/orgs/{slug}/billing"): {"enterprise_price_id": "price_test"},
    }
    return bodies.get(op.key, {})
