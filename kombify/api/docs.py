"""``/docs`` (Swagger UI) and ``/redoc`` served with their assets from this process.

FastAPI's default pages load their scripts from a CDN, which leaves a blank page on a homelab
without internet. The assets come from the ``fastapi-offline`` package (MIT), which ships
Swagger UI and ReDoc's browser bundles.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from kombify.gateway.security_headers import page_policy

ASSETS = "/docs-assets"
_OAUTH2_REDIRECT = "/docs/oauth2-redirect"


def _with_policy(page: HTMLResponse) -> HTMLResponse:
    """``page`` with a Content-Security-Policy that allows exactly its inline scripts."""
    page.headers["Content-Security-Policy"] = page_policy(bytes(page.body).decode())
    return page


def assets_dir() -> Path:
    """The folder of the packaged Swagger UI and ReDoc bundles."""
    return Path(str(files("fastapi_offline").joinpath("static")))


def install(app: FastAPI) -> None:
    """Serve the docs pages and their assets; build the app with ``docs_url=None``."""
    app.mount(ASSETS, StaticFiles(directory=assets_dir()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _with_policy(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{app.title} API",
                oauth2_redirect_url=_OAUTH2_REDIRECT,
                swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                swagger_css_url=f"{ASSETS}/swagger-ui.css",
                swagger_favicon_url=f"{ASSETS}/favicon.png",
                # Swagger UI would otherwise ask an online validator about the document.
                swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
            )
        )

    @app.get(_OAUTH2_REDIRECT, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return _with_policy(get_swagger_ui_oauth2_redirect_html())

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _with_policy(
            get_redoc_html(
                openapi_url=openapi_url,
                title=f"{app.title} API",
                redoc_js_url=f"{ASSETS}/redoc.standalone.js",
                redoc_favicon_url=f"{ASSETS}/favicon.png",
                with_google_fonts=False,
            )
        )
