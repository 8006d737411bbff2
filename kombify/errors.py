"""The one exception tree kombify raises across its boundaries.

Library errors (sqlalchemy, docker, asyncssh, grpc, the OpenTofu CLI) are re-raised as the
nearest kombify error with ``raise ... from exc`` where they cross into kombify code, so the
CLI and the API only ever have to map these types to messages and status codes.
"""

from __future__ import annotations

from typing import Any


class KombifyError(Exception):
    """Base of every error kombify raises on purpose.

    Attributes:
        code: A short, stable machine-readable type (used as the problem+json ``type`` tail
            and as the Temporal ``ApplicationError`` type).
        status: The HTTP status the API answers with.
    """

    code = "kombify-error"
    status = 500
    # True when no retry can help (the user has to act first): activities raise it as a
    # non-retryable ApplicationError.
    permanent = False

    def __init__(self, message: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        # Field-level problems ({"path", "line", "message"}) when there are several.
        self.errors: list[dict[str, Any]] = errors or []


class ConfigError(KombifyError):
    """Settings or environment are wrong (bad URL, missing binary)."""

    code = "config-error"
    status = 500


class NotFoundError(KombifyError):
    """A named thing (stack, simulation, node) does not exist."""

    code = "not-found"
    status = 404


class ForbiddenError(KombifyError):
    """The caller is known but its role or key scope does not allow this."""

    code = "forbidden"
    status = 403


class RateLimitedError(KombifyError):
    """Too many requests of one kind from one account, key or address; try again later."""

    code = "rate-limited"
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)
        self.headers = {"Retry-After": str(self.retry_after)}


class ConflictError(KombifyError):
    """The request clashes with the current state (name taken, run in progress)."""

    code = "conflict"
    status = 409


class PaymentRequiredError(KombifyError):
    """The organisation's plan does not include this; ``plan`` names the one that does.

    Answered as 402 problem+json with ``plan`` (the cheapest plan that allows it), the
    entitlement it is about and, for an error in a kombination file, its ``errors`` path.
    """

    code = "plan-limit"
    status = 402
    permanent = True
    # The problem's title (default: the class name without "Error").
    title = "Payment required"

    def __init__(
        self,
        message: str,
        *,
        plan: str,
        entitlement: str,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message, errors=errors)
        self.plan = plan
        self.entitlement = entitlement
        self.problem_fields: dict[str, Any] = {"plan": plan, "entitlement": entitlement}


class BillingError(KombifyError):
    """Stripe refused or could not be reached, or billing is not configured."""

    code = "billing-error"
    status = 502


class InvalidRequestError(KombifyError):
    """A request field holds a value the route cannot take (``errors`` names the field)."""

    code = "invalid-request"
    status = 422
    title = "Invalid request"


class SpecError(KombifyError):
    """A kombination or template file is invalid; carries every problem found."""

    code = "invalid-spec"
    status = 422


class TofuError(KombifyError):
    """The OpenTofu/Terraform CLI failed."""

    code = "tofu-error"
    status = 502


class DockerError(KombifyError):
    """The Docker engine refused or failed an operation."""

    code = "docker-error"
    status = 502


class SshError(KombifyError):
    """An SSH connection or remote command failed."""

    code = "ssh-error"
    status = 502


class HostKeyChangedError(SshError):
    """A node presented an SSH host key other than its pin; nothing was sent to it.

    The message names the node, both fingerprints and the command that re-trusts the node
    after the user checked the new key on it.
    """

    code = "host-key-changed"
    status = 409
    permanent = True


class AgentError(KombifyError):
    """The node agent could not be reached or refused a request."""

    code = "agent-error"
    status = 502


class CertificateRevokedError(AgentError):
    """A node agent presented a certificate that kombify revoked (at ``destroy``)."""

    code = "certificate-revoked"
    permanent = True


class ServiceUnavailableError(KombifyError):
    """A component kombify depends on (database, Temporal) does not answer."""

    code = "unavailable"
    status = 503
