"""Why an OpenID Connect or GitHub login did not sign anyone in."""

from __future__ import annotations

from kombify.errors import KombifyError


class LoginRefused(KombifyError):
    """The login is not accepted: a check on state, token or account failed (nothing changed)."""

    code = "login-refused"
    status = 401


class LoginRequestError(KombifyError):
    """The login request itself is malformed (unknown provider field, bad CLI redirect)."""

    code = "invalid-login-request"
    status = 400


class ProviderUnavailable(KombifyError):
    """The provider did not answer, or answered something that is not OAuth 2 / OIDC."""

    code = "provider-unavailable"
    status = 502
