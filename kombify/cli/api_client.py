"""The CLI's HTTP client for the kombify API; problem+json answers become kombify errors."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from kombify.admin_token import Unauthorized, admin_token
from kombify.errors import (
    ConflictError,
    KombifyError,
    NotFoundError,
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


class ApiClient:
    """Calls the API at ``settings.resolved_api_url``."""

    def __init__(self, settings: Settings, *, timeout: float = 30.0) -> None:
        self.base_url = settings.resolved_api_url
        token = admin_token(settings)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, headers=headers)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request; the decoded JSON body (None for 204), or a kombify error."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnavailableError(
                f"the kombify API does not answer at {self.base_url}: start it with "
                "`kombify server` (or set KOMBIFY_API_URL)"
            ) from exc
        if response.status_code == 204:
            return None
        if response.is_success:
            return response.json()
        raise self._error(response)

    def _error(self, response: httpx.Response) -> KombifyError:
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text[:200]}
        kind = _BY_STATUS.get(response.status_code, KombifyError)
        detail = str(body.get("detail") or body.get("title") or response.reason_phrase)
        # The validator's problems travel as "errors"; keep them for a full report.
        return kind(detail, errors=body.get("errors") or [])

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()
