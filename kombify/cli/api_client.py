"""The CLI's HTTP client for the kombify API; problem+json answers become kombify errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal
from urllib.parse import quote

import httpx

from kombify import __version__
from kombify.admin_token import Unauthorized
from kombify.cli.credentials import Credential, resolve
from kombify.errors import (
    ConflictError,
    KombifyError,
    NotFoundError,
    PaymentRequiredError,
    ServiceUnavailableError,
    SpecError,
)
from kombify.names import InvalidName
from kombify.settings import Settings

_BY_STATUS: dict[int, type[KombifyError]] = {
    401: Unauthorized,
    404: NotFoundError,
    409: ConflictError,
    422: SpecError,
    503: ServiceUnavailableError,
}


def api_path(*segments: str) -> str:
    """An API path from its segments, each percent-escaped.

    Ids and names go into URLs only through here: a segment can neither add a path step
    (``a/b``), a query (``?x=``) nor climb one (``..``), whatever a caller checked before.

    Raises:
        InvalidName: A segment is empty, ``.`` or ``..``.
    """
    for segment in segments:
        if segment in ("", ".", ".."):
            raise InvalidName(f"`{segment}` cannot be part of an API path")
    return "/" + "/".join(quote(segment, safe="") for segment in segments)


def problem(response: httpx.Response) -> dict[str, Any]:
    """The problem+json body of a failed answer (or one made of its text)."""
    try:
        body = response.json()
    except ValueError:
        return {"detail": response.text[:200]}
    return body if isinstance(body, dict) else {"detail": str(body)[:200]}


# `kombify --org SLUG`, set by the root command once per invocation (None without it).
_org_option: str | None = None


def choose_org(slug: str | None) -> None:
    """Record the root command's ``--org`` (every request of this invocation sends it)."""
    global _org_option
    _org_option = slug


def selected_org(settings: Settings) -> str | None:
    """The organisation to act in: ``kombify --org SLUG``, else ``KOMBIFY_ORG``, else none."""
    return _org_option or settings.org


def _sign_in_hint(credential: Credential | None) -> str:
    # The API says what was wrong; this says what to do about it from here.
    if credential is None:
        return " (`kombify login`, or set KOMBIFY_API_KEY)"
    if credential.source == "api-key":
        return (
            " (KOMBIFY_API_KEY was sent: make a new key with `kombify api-keys create`, "
            "or unset it)"
        )
    if credential.source == "session":
        return " (run `kombify login` again)"
    return " (the local admin token was sent: `kombify login`, or set KOMBIFY_API_KEY)"


class ApiClient:
    """Calls the API at ``settings.resolved_api_url``."""

    def __init__(
        self,
        settings: Settings,
        *,
        timeout: float = 30.0,
        credential: Credential | None | Literal["resolve"] = "resolve",
        send_org: bool = True,
    ) -> None:
        """A client for the API the settings name.

        Args:
            settings: API URL, credentials and organisation.
            timeout: Seconds per request.
            credential: What to send as bearer token: by default the first of
                ``KOMBIFY_API_KEY``, the ``kombify login`` session and the admin token
                (:func:`kombify.cli.credentials.resolve`); ``None`` sends none (login).
            send_org: Send the chosen organisation (``--org``, ``KOMBIFY_ORG``); off for
                calls about the session itself, which work in any organisation.
        """
        self.base_url = settings.resolved_api_url
        self.credential = resolve(settings) if credential == "resolve" else credential
        # Named in the user's session list and the activity log ("which client").
        headers = {"User-Agent": f"kombify-cli/{__version__}"}
        if self.credential is not None:
            headers["Authorization"] = f"Bearer {self.credential.token}"
        org = selected_org(settings) if send_org else None
        if org:
            headers["X-Kombify-Org"] = org
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, headers=headers)

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request and return the answer as it is (only a dead API is an error)."""
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnavailableError(
                f"the kombify API does not answer at {self.base_url}: start it with "
                "`kombify server` (or set KOMBIFY_API_URL)"
            ) from exc

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """Send a request and yield the answer unread, for streams (see :mod:`.sse`)."""
        try:
            with self._http.stream(method, path, **kwargs) as response:
                yield response
        except httpx.ConnectError as exc:
            raise ServiceUnavailableError(
                f"the kombify API does not answer at {self.base_url}: start it with "
                "`kombify server` (or set KOMBIFY_API_URL)"
            ) from exc

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request; the decoded JSON body (None for 204), or a kombify error."""
        response = self.send(method, path, **kwargs)
        if response.status_code == 204:
            return None
        if response.is_success:
            return response.json()
        raise self.error(response)

    def error(self, response: httpx.Response, *, sign_in_hint: bool = True) -> KombifyError:
        """The kombify error a failed answer stands for (a 401 says how to sign in, unless
        ``sign_in_hint`` is off: a wrong password at login is not a missing login)."""
        body = problem(response)
        kind = _BY_STATUS.get(response.status_code, KombifyError)
        detail = str(body.get("detail") or body.get("title") or response.reason_phrase)
        if sign_in_hint and response.status_code == 401 and "kombify login" not in detail:
            detail = f"{detail}{_sign_in_hint(self.credential)}"
        errors = body.get("errors") or []
        if response.status_code == 402:
            return PaymentRequiredError(
                detail,
                plan=str(body.get("plan") or ""),
                entitlement=str(body.get("entitlement") or ""),
                errors=errors,
            )
        # The validator's problems travel as "errors"; keep them for a full report.
        return kind(detail, errors=errors)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()
