"""Connecting to Temporal: the embedded dev server or ``KOMBIFY_TEMPORAL_ADDRESS``."""

from __future__ import annotations

from temporalio.client import Client

from kombify.errors import ServiceUnavailableError
from kombify.settings import Settings


def temporal_address(settings: Settings) -> str:
    """The address clients dial: the external cluster if set, else the dev server's."""
    if settings.temporal_address:
        return settings.temporal_address
    from kombify.runtime.temporal_dev import load_config

    return load_config(settings).address


async def connect(settings: Settings) -> Client:
    """A Temporal client for kombify's namespace; a clear error when nothing answers."""
    address = temporal_address(settings)
    try:
        return await Client.connect(address, namespace=settings.temporal_namespace)
    except RuntimeError as exc:
        raise ServiceUnavailableError(
            f"Temporal does not answer at {address}: start it with `kombify temporal` "
            f"(or `kombify server`), or set KOMBIFY_TEMPORAL_ADDRESS ({exc})"
        ) from exc
