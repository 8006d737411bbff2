"""The web dashboard: the static SvelteKit build, served by the API process at ``/``.

The build (``scripts/build-dashboard.sh`` makes it in ``dashboard/build``; ``KOMBIFY_DASHBOARD_DIR``
points elsewhere) is a single-page app: every GET for a path the API does not own answers
``index.html`` and the app routes in the browser. Files under ``/_app/immutable/`` have content
hashes in their names and are cached for a year; everything else is revalidated each time.
``index.html`` carries a Content-Security-Policy allowing SvelteKit's inline bootstrap script by
its hash. The route matches only GET and HEAD outside the API's own prefixes, so unknown API
paths and other methods keep their problem+json 404 and 405 answers.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fastapi import FastAPI
from starlette.datastructures import URLPath
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from kombify.gateway.security_headers import page_policy
from kombify.settings import Settings

IMMUTABLE_PREFIX = "/_app/immutable/"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
_APP_PREFIX = "/_app/"
_METHODS = frozenset({"GET", "HEAD"})
# Always the API's, whatever routes exist when the dashboard is installed.
_API_PREFIXES = frozenset(
    {"v1", "docs", "docs-assets", "redoc", "openapi.json", "healthz", "readyz", ".well-known"}
)

NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kombify: the dashboard is not built</title>
<style>body {{ font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto;
padding: 0 1rem; }}</style></head>
<body>
<h1>The dashboard is not built</h1>
<p>kombify's API is running, but its web dashboard was not found in <code>{where}</code>.</p>
<p>Build it with Node.js 20 or newer and npm installed, from the kombify checkout:</p>
<pre>bash scripts/build-dashboard.sh</pre>
<p>(<code>make demo</code> and <code>make test</code> run it too), then reload this page.
Or set <code>KOMBIFY_DASHBOARD_DIR</code> to a folder holding a build.</p>
<p>The API works without it: <a href="/docs">API reference</a>.</p>
</body></html>
"""


def default_dir() -> Path:
    """``dashboard/build`` of the checkout this kombify is installed from."""
    return Path(__file__).resolve().parents[2] / "dashboard" / "build"


def build_dir(settings: Settings) -> Path:
    """Where the dashboard's built files are: ``KOMBIFY_DASHBOARD_DIR`` or the default."""
    return settings.dashboard_dir or default_dir()


@dataclass(frozen=True)
class _Page:
    body: bytes
    policy: str


@lru_cache(maxsize=4)
def _page(path: Path, mtime_ns: int, size: int) -> _Page:  # noqa: ARG001 - the cache key
    text = path.read_text(encoding="utf-8")
    return _Page(text.encode("utf-8"), page_policy(text))


class Dashboard:
    """Answers a GET for a dashboard path from the build folder ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def file_for(self, path: str) -> Path | None:
        """The regular file inside the build that ``path`` names, or None.

        Paths with ``.``/``..`` segments, backslashes or NUL are refused outright; what is left
        is resolved (symlinks followed) and must still lie inside the build folder.
        """
        relative = path.lstrip("/")
        if not relative or _traverses(path):
            return None
        try:
            root = self.root.resolve(strict=True)
            candidate = (root / relative).resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not candidate.is_relative_to(root) or not candidate.is_file():
            return None
        return candidate

    def index(self) -> Response:
        """``index.html`` with its Content-Security-Policy, or the not-built page."""
        index = self.root / "index.html"
        try:
            stat = index.stat()
            page = _page(index, stat.st_mtime_ns, stat.st_size)
        except OSError:
            return not_built(self.root)
        return Response(
            page.body,
            media_type="text/html; charset=utf-8",
            headers={"Cache-Control": REVALIDATE, "Content-Security-Policy": page.policy},
        )

    def respond(self, path: str) -> Response:
        """The answer for a GET of ``path``; 404 (problem+json, by the app's handler) for a
        traversal or a missing file under ``/_app/``."""
        if path in ("", "/", "/index.html"):
            return self.index()
        if _traverses(path):
            raise HTTPException(404)
        found = self.file_for(path)
        if found is not None:
            cache = IMMUTABLE if path.startswith(IMMUTABLE_PREFIX) else REVALIDATE
            return FileResponse(found, headers={"Cache-Control": cache})
        if path.startswith(_APP_PREFIX):
            raise HTTPException(404)  # a missing script must not be answered with HTML
        return self.index()  # a page of the app: it routes in the browser


def _traverses(path: str) -> bool:
    return any(part in (".", "..") for part in path.split("/")) or "\\" in path or "\x00" in path


def not_built(root: Path) -> HTMLResponse:
    """The page at ``/`` (and every dashboard path) when there is no build to serve."""
    page = NOT_BUILT.format(where=html.escape(str(root)))
    return HTMLResponse(
        page,
        status_code=503,
        headers={"Cache-Control": REVALIDATE, "Content-Security-Policy": page_policy(page)},
    )


class DashboardRoute(BaseRoute):
    """Matches GET and HEAD for every path outside the API's prefixes; added last."""

    path = "/{dashboard}"  # what the request log shows as the route (never the raw path)

    def __init__(self, dashboard: Dashboard, api_prefixes: frozenset[str]) -> None:
        self.dashboard = dashboard
        self.api_prefixes = api_prefixes

    def url_path_for(self, name: str, /, **path_params: object) -> URLPath:
        """The dashboard has no named URLs: ``url_for`` goes on to say no route matched."""
        raise NoMatchFound(name, dict(path_params))

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """FULL for a dashboard GET/HEAD; NONE otherwise, so the API's 404/405 stand."""
        if scope["type"] != "http" or scope["method"] not in _METHODS:
            return Match.NONE, {}
        first = str(scope["path"]).lstrip("/").split("/", 1)[0]
        if first in self.api_prefixes:
            return Match.NONE, {}
        return Match.FULL, {"route": self}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the file, index.html, or a 404."""
        response = self.dashboard.respond(str(scope["path"]))
        await response(scope, receive, send)


def api_prefixes(app: FastAPI) -> frozenset[str]:
    """The first path segments of the app's routes (``v1``, ``docs`` …): never the dashboard's."""
    found = set(_API_PREFIXES)
    for route in app.router.routes:
        path = getattr(route, "path", "")
        first = str(path).lstrip("/").split("/", 1)[0]
        if first and "{" not in first and not isinstance(route, DashboardRoute):
            found.add(first)
    return frozenset(found)


def install(app: FastAPI, settings: Settings) -> None:
    """Serve the dashboard at ``/``; call after every API route is added."""
    route = DashboardRoute(Dashboard(build_dir(settings)), api_prefixes(app))
    app.router.routes.append(route)

