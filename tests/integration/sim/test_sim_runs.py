"""Durable simulation runs through the API: ready, then gone after `stop` or after the TTL."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import pytest

from kombify.errors import NotFoundError
from kombify.sim.client import docker_client
from kombify.sim.engine import SimEngine
from tests.support.deploy_env import KombifyEnv

pytestmark = pytest.mark.docker


def _exists(name: str) -> bool:
    client = docker_client()
    try:
        SimEngine(client).info(name)
    except NotFoundError:
        return False
    finally:
        client.close()
    return True


async def _until(predicate: Any, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


async def _ready(env: KombifyEnv, name: str) -> dict[str, Any]:
    async def check() -> bool:
        response = await env.http.get(f"/v1/simulation-runs/{name}")
        return response.status_code == 200 and response.json()["phase"] == "ready"

    await _until(check, f"{name} ready")
    return dict(await env.call("GET", f"/v1/simulation-runs/{name}"))


async def test_stop_signal_tears_the_run_down(kombify: KombifyEnv) -> None:
    name = kombify.new_stack()
    body = {"name": name, "nodes": 2, "ttl_seconds": 3600}
    started = await kombify.call("POST", "/v1/simulation-runs", json=body)
    assert started["workflow_id"] == f"sim/{name}"

    run = await _ready(kombify, name)
    assert sorted(n["name"] for n in run["nodes"]) == ["node1", "node2"]
    assert await kombify.on_node(name, "node2", "hostname") == "node2\n"
    again = await kombify.http.post("/v1/simulation-runs", json=body)
    assert again.status_code == 409

    await kombify.call("POST", f"/v1/simulation-runs/{name}/stop")

    await _until(lambda: asyncio.to_thread(lambda: not _exists(name)), f"{name} removed")


async def test_ttl_ends_the_run(kombify: KombifyEnv) -> None:
    name = f"kr-{secrets.token_hex(3)}"
    kombify.stacks.append(name)
    await kombify.call(
        "POST", "/v1/simulation-runs", json={"name": name, "nodes": 1, "ttl_seconds": 5}
    )
    await _ready(kombify, name)
    assert await asyncio.to_thread(_exists, name)

    async def deleted() -> bool:
        run = await kombify.call("GET", f"/v1/simulation-runs/{name}")
        return bool(run["phase"] == "deleted")

    await _until(deleted, f"{name} expired")
    assert not await asyncio.to_thread(_exists, name)
