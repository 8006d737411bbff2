"""Webhook delivery: each event POSTed to every endpoint that wants it, signed as Stripe signs.

``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``. Deliveries run in
the server's event loop, one queue per endpoint (so one endpoint sees events in the order they
happened), and each attempt is recorded for the control API.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from tests.support.stripe_standin.store import Obj, Store, new_id

DEFAULT_RETRY_DELAYS = (0.2, 1.0, 3.0)


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` value for ``body``."""
    stamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{stamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


class Sender:
    """Queues, signs and sends events; remembers every delivery and its attempts."""

    def __init__(self, retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS) -> None:
        self.retry_delays = retry_delays
        self.deliveries: list[dict[str, Any]] = []
        self._queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._client: httpx.AsyncClient | None = None
        self.store: Store | None = None

    def bind(self, store: Store) -> None:
        self.store = store
        store.on_event = self.enqueue

    def enqueue(self, event: Obj, *, endpoint_ids: list[str] | None = None) -> list[dict[str, Any]]:
        """Queue ``event`` for its endpoints (or just ``endpoint_ids``); the new deliveries."""
        assert self.store is not None
        endpoints = self.store.endpoints_for(event["type"])
        if endpoint_ids is not None:
            endpoints = [e for e in endpoints if e["id"] in endpoint_ids]
        made = []
        for endpoint in endpoints:
            delivery: dict[str, Any] = {
                "id": new_id("dlv_", 16),
                "event": event["id"],
                "type": event["type"],
                "endpoint": endpoint["id"],
                "url": endpoint["url"],
                "status": "pending",
                "attempts": [],
            }
            self.deliveries.append(delivery)
            made.append(delivery)
            event["pending_webhooks"] = event.get("pending_webhooks", 0) + 1
            self._queue(endpoint["id"]).put_nowait(delivery)
        return made

    def _queue(self, endpoint_id: str) -> asyncio.Queue[dict[str, Any]]:
        queue = self._queues.get(endpoint_id)
        if queue is None:
            queue = self._queues[endpoint_id] = asyncio.Queue()
            self._workers[endpoint_id] = asyncio.get_running_loop().create_task(
                self._work(endpoint_id, queue)
            )
        return queue

    async def _work(self, endpoint_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            delivery = await queue.get()
            try:
                await self._deliver(endpoint_id, delivery)
            finally:
                queue.task_done()

    async def _deliver(self, endpoint_id: str, delivery: dict[str, Any]) -> None:
        assert self.store is not None
        event = self.store.objects["event"][delivery["event"]]
        secret = self.store.webhook_secrets[endpoint_id]
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=10.0)
        body = json.dumps(event, indent=2).encode()
        for attempt, delay in enumerate((0.0, *self.retry_delays)):
            if attempt:
                await asyncio.sleep(delay)
            record: dict[str, Any] = {"at": time.time(), "status_code": None, "error": None}
            try:
                response = await self._client.post(
                    delivery["url"],
                    content=body,
                    headers={
                        "Content-Type": "application/json; charset=utf-8",
                        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                        "Stripe-Signature": signature_header(secret, body),
                    },
                )
                record["status_code"] = response.status_code
                ok = 200 <= response.status_code < 300
            except httpx.HTTPError as exc:
                record["error"] = f"{type(exc).__name__}: {exc}"[:300]
                ok = False
            delivery["attempts"].append(record)
            if ok:
                delivery["status"] = "delivered"
                event["pending_webhooks"] = max(0, event.get("pending_webhooks", 1) - 1)
                return
        delivery["status"] = "failed"

    async def close(self) -> None:
        for task in self._workers.values():
            task.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        self._workers.clear()
        self._queues.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def public(self, delivery: dict[str, Any]) -> dict[str, Any]:
        return {
            **delivery,
            "attempt_count": len(delivery["attempts"]),
            "status_code": delivery["attempts"][-1]["status_code"]
            if delivery["attempts"]
            else None,
        }
