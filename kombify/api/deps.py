"""Shared dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session
from temporalio.client import Client

from kombify.db.engine import get_engine
from kombify.runtime.temporal_client import connect
from kombify.settings import Settings

MAX_DB_INT = 2**63 - 1
"""The largest integer SQLite and PostgreSQL both store: the bound of every integer parameter
that reaches a query (a larger one is a 422, not an overflow inside the driver)."""


def get_app_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """A database session per request."""
    settings: Settings = request.app.state.settings
    with Session(get_engine(settings.resolved_database_url)) as session:
        yield session


async def get_temporal(request: Request) -> Client:
    """The app's Temporal client, connected on first use so the API starts without Temporal."""
    client: Client | None = getattr(request.app.state, "temporal", None)
    if client is None:
        client = await connect(request.app.state.settings)
        request.app.state.temporal = client
    return client


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
