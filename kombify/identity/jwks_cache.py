"""The trusted portal's public keys, fetched from its JWKS and cached.

Keys are refetched when the cache is older than ``KOMBIFY_SSO_JWKS_CACHE_SECONDS`` and when a
token names a key id the cache does not hold (a key the portal just rotated in), at most once
per ``_UNKNOWN_KID_EVERY`` seconds so that made-up key ids cannot make this instance hammer the
portal. A key the portal stopped publishing is dropped with the next fetch. When the portal
cannot be reached the request fails (503) instead of trusting stale keys.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OKPKey

from kombify.errors import ServiceUnavailableError

JWKS_PATH = "/.well-known/jwks.json"
FETCH_TIMEOUT = 5.0
_UNKNOWN_KID_EVERY = 10.0


class JwksCache:
    """The public keys of one issuer, by key id."""

    def __init__(
        self,
        issuer: str,
        *,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = FETCH_TIMEOUT,
    ) -> None:
        self.url = issuer.rstrip("/") + JWKS_PATH
        self._max_age = max_age
        self._clock = clock
        self._timeout = timeout
        self._keys: dict[str, OKPKey] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def key(self, kid: str) -> OKPKey | None:
        """The issuer's public key ``kid``, or None when the issuer does not publish it."""
        with self._lock:
            now = self._clock()
            age = None if self._fetched_at is None else now - self._fetched_at
            if age is None or age >= self._max_age:
                self._refresh(now)
            elif kid not in self._keys and age >= min(_UNKNOWN_KID_EVERY, self._max_age):
                self._refresh(now)
            return self._keys.get(kid)

    def _refresh(self, now: float) -> None:
        self._keys = self._fetch()
        self._fetched_at = now

    def _fetch(self) -> dict[str, OKPKey]:
        try:
            answer = httpx.get(self.url, timeout=self._timeout, follow_redirects=False)
            answer.raise_for_status()
            document = answer.json()
            # An issuer publishing no key (yet) is valid JWKS: every token is then refused.
            keys = KeySet.import_key_set(document).keys if document["keys"] else []
        except httpx.HTTPStatusError as exc:
            raise ServiceUnavailableError(
                f"the SSO issuer's keys at {self.url} are not available "
                f"(HTTP {exc.response.status_code}); try again later"
            ) from None
        except httpx.HTTPError as exc:
            raise ServiceUnavailableError(
                f"cannot fetch the SSO issuer's keys from {self.url} "
                f"({type(exc).__name__}, timeout {self._timeout:g} s); try again later"
            ) from None
        except (ValueError, TypeError, KeyError, JoseError):
            raise ServiceUnavailableError(
                f"the SSO issuer's keys at {self.url} are not a JSON Web Key Set"
            ) from None
        return {k.kid: k for k in keys if isinstance(k, OKPKey) and k.kid}
