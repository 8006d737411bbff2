"""Login providers for the OIDC tests, each on a free 127.0.0.1 port and stopped by the test.

- :func:`running_mock_provider`: the real ``oidc-provider-mock`` (PyPI) as its own process. It
  authorizes without a browser: its authorization form is POSTed ``sub=<subject>``.
- :class:`TinyProvider`: a small OpenID provider of our own for the ID tokens the mock cannot
  be made to produce (altered, for another audience, expired, from another issuer, signed by
  an unpublished key, with another nonce). It checks PKCE S256, the redirect URI and the
  client's secret like a real one.
- :class:`GitHubStandIn`: GitHub's documented OAuth endpoints (``/login/oauth/authorize``,
  ``/login/oauth/access_token``) and REST endpoints (``/user``, ``/user/emails``).

The tiny provider and the GitHub stand-in authorize at once (302 back with a code): the part
under test is kombify's, not a login page.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from tests.support.ports import free_port


@contextmanager
def running_mock_provider(*, token_max_age: int = 3600) -> Iterator[str]:
    """``oidc-provider-mock`` as a process (nonce required); yields its issuer URL."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "oidc_provider_mock",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--require-nonce",
            f"--token-max-age={token_max_age}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"},
    )
    issuer = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"oidc-provider-mock exited: {proc.stderr.read()!r}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{issuer}/.well-known/openid-configuration").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("oidc-provider-mock did not answer within 30 s")
            time.sleep(0.1)
        yield issuer
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def _s256(verifier: str) -> str:
    return (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )


def _basic(header: str) -> tuple[str, str]:
    if not header.startswith("Basic "):
        return "", ""
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return user, password


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str
    subject: str


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1 whose handler calls ``self.get``/``self.post``."""

    def __init__(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                outer._answer(self, *outer.get(self))

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                outer._answer(self, *outer.post(self, form))

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int, body: Any, location: str) -> None:
        handler.send_response(status)
        if location:
            handler.send_header("Location", location)
        data = json.dumps(body).encode() if body is not None else b""
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def get(self, handler: BaseHTTPRequestHandler) -> tuple[int, Any, str]:
        raise NotImplementedError

    def post(self, handler: BaseHTTPRequestHandler, form: dict[str, str]) -> tuple[int, Any, str]:
        raise NotImplementedError

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    @staticmethod
    def _redirect(redirect_uri: str, **params: str) -> tuple[int, Any, str]:
        joiner = "&" if urlsplit(redirect_uri).query else "?"
        return 302, None, redirect_uri + joiner + urlencode(params)


@dataclass
class TinyUser:
    """Who signs in at the tiny provider next, and what is wrong with the token it gets."""

    subject: str = "tiny-user-1"
    claims: dict[str, Any] = field(default_factory=dict)
    fault: str = ""  # tampered, wrong-aud, expired, wrong-iss, wrong-nonce, unknown-key


class TinyProvider(_Server):
    """A minimal OpenID provider: discovery, JWKS, authorize (at once), token (PKCE checked)."""

    def __init__(self, *, client_id: str, client_secret: str) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.key = RSAKey.generate_key(2048, parameters={"kid": "tiny-1", "use": "sig"})
        self.other_key = RSAKey.generate_key(2048, parameters={"kid": "tiny-1", "use": "sig"})
        self.next = TinyUser()
        self.grants: dict[str, _Grant] = {}
        self.token_requests = 0
        super().__init__()

    def get(self, handler: BaseHTTPRequestHandler) -> tuple[int, Any, str]:
        parts = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/.well-known/openid-configuration":
            return (
                200,
                {
                    "issuer": self.url,
                    "authorization_endpoint": f"{self.url}/authorize",
                    "token_endpoint": f"{self.url}/token",
                    "jwks_uri": f"{self.url}/jwks",
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "code_challenge_methods_supported": ["S256"],
                },
                "",
            )
        if parts.path == "/jwks":
            return 200, KeySet([self.key]).as_dict(private=False), ""
        if parts.path == "/authorize":
            if (
                query.get("client_id") != self.client_id
                or query.get("code_challenge_method") != "S256"
            ):
                return 400, {"error": "invalid_request"}, ""
            code = secrets.token_urlsafe(16)
            self.grants[code] = _Grant(
                client_id=query["client_id"],
                redirect_uri=query["redirect_uri"],
                challenge=query["code_challenge"],
                nonce=query.get("nonce", ""),
                subject=self.next.subject,
            )
            return self._redirect(query["redirect_uri"], code=code, state=query["state"])
        return 404, {"error": "not_found"}, ""

    def post(self, handler: BaseHTTPRequestHandler, form: dict[str, str]) -> tuple[int, Any, str]:
        self.token_requests += 1
        if urlsplit(handler.path).path != "/token":
            return 404, {"error": "not_found"}, ""
        if _basic(handler.headers.get("Authorization", "")) != (self.client_id, self.client_secret):
            return 401, {"error": "invalid_client"}, ""
        grant = self.grants.pop(form.get("code", ""), None)
        if grant is None or grant.redirect_uri != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant"}, ""
        if _s256(form.get("code_verifier", "")) != grant.challenge:
            return 400, {"error": "invalid_grant"}, ""
        return (
            200,
            {
                "access_token": secrets.token_urlsafe(16),
                "token_type": "Bearer",
                "id_token": self._id_token(grant),
            },
            "",
        )

    def _id_token(self, grant: _Grant) -> str:
        fault = self.next.fault
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": "http://127.0.0.1:1" if fault == "wrong-iss" else self.url,
            "sub": grant.subject,
            "aud": "someone-else" if fault == "wrong-aud" else grant.client_id,
            "iat": now - 3600 if fault == "expired" else now,
            "exp": now - 600 if fault == "expired" else now + 300,
            "nonce": "another-nonce" if fault == "wrong-nonce" else grant.nonce,
            **self.next.claims,
        }
        key = self.other_key if fault == "unknown-key" else self.key
        token = jwt.encode({"alg": "RS256", "kid": "tiny-1"}, claims, key)
        if fault == "tampered":  # same signature, one claim changed
            header, payload, signature = token.split(".")
            changed = {**claims, "email": "attacker@example.org"}
            payload = base64.urlsafe_b64encode(json.dumps(changed).encode()).rstrip(b"=").decode()
            token = f"{header}.{payload}.{signature}"
        return token


@dataclass
class GitHubUser:
    """The account that signs in at the stand-in next."""

    id: int = 4242
    login: str = "octo"
    name: str = "Octo Cat"
    emails: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"email": "octo@example.org", "primary": True, "verified": True, "visibility": "public"}
        ]
    )


class GitHubStandIn(_Server):
    """GitHub's OAuth web flow and the two REST endpoints kombify reads."""

    def __init__(self, *, client_id: str, client_secret: str) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.next = GitHubUser()
        self.grants: dict[str, tuple[str, str, GitHubUser]] = {}
        self.tokens: dict[str, GitHubUser] = {}
        super().__init__()

    def get(self, handler: BaseHTTPRequestHandler) -> tuple[int, Any, str]:
        parts = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/login/oauth/authorize":
            if query.get("client_id") != self.client_id:
                return 404, None, ""
            code = secrets.token_hex(10)
            self.grants[code] = (query["redirect_uri"], query.get("code_challenge", ""), self.next)
            return self._redirect(query["redirect_uri"], code=code, state=query["state"])
        user = self.tokens.get(handler.headers.get("Authorization", "").removeprefix("Bearer "))
        if user is None:
            return 401, {"message": "Bad credentials"}, ""
        if parts.path == "/user":
            return 200, {"id": user.id, "login": user.login, "name": user.name}, ""
        if parts.path == "/user/emails":
            return 200, user.emails, ""
        return 404, {"message": "Not Found"}, ""

    def post(self, handler: BaseHTTPRequestHandler, form: dict[str, str]) -> tuple[int, Any, str]:
        if urlsplit(handler.path).path != "/login/oauth/access_token":
            return 404, None, ""
        # GitHub answers 200 with an error member for a bad code (its documented behaviour).
        if _basic(handler.headers.get("Authorization", "")) != (self.client_id, self.client_secret):
            return 200, {"error": "incorrect_client_credentials"}, ""
        grant = self.grants.pop(form.get("code", ""), None)
        if grant is None or grant[0] != form.get("redirect_uri"):
            return 200, {"error": "bad_verification_code"}, ""
        if grant[1] and _s256(form.get("code_verifier", "")) != grant[1]:
            return 200, {"error": "bad_verification_code"}, ""
        token = "gho_" + secrets.token_hex(16)
        self.tokens[token] = grant[2]
        return (
            200,
            {"access_token": token, "token_type": "bearer", "scope": "read:user,user:email"},
            "",
        )
