"""Notifications through Apprise, received by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from kombify.contracts.heal import Incident
from kombify.notify import incident_message, send
from tests.support.ports import free_port
from tests.support.receiver import Receiver

TOKEN = "hook-t0ken-9f2"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _incident(**changes: Any) -> Incident:
    fields: dict[str, Any] = {
        "id": 7,
        "stack": "homelab",
        "node": "node-1",
        "service": "web",
        "kind": "exited",
        "detection": "agent watch: docker event die",
        "detail": "exit code 137",
        "detected_at": "2026-12-03T10:00:00.250000+00:00",
        "action": "",
        "actions": [],
        "recovered_at": "",
        "state": "open",
        "time_to_recovery_s": None,
    }
    return Incident(**{**fields, **changes})


def test_json_receiver_gets_title_body_and_type(receiver: Receiver) -> None:
    url = f"json://127.0.0.1:{receiver.port}/hooks/{TOKEN}"

    failures = send([url], "kombify: web on node-1 of homelab exited", "the body", kind="warning")

    assert failures == []
    assert receiver.paths == [f"/hooks/{TOKEN}"]
    [message] = receiver.received
    assert message["title"] == "kombify: web on node-1 of homelab exited"
    assert message["message"] == "the body"
    assert message["type"] == "warning"


def test_a_dead_receiver_is_a_masked_failure_not_an_exception(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"json://kombify:{TOKEN}@127.0.0.1:{free_port()}/hooks/{TOKEN}"
    alive = f"json://127.0.0.1:{receiver.port}/ok"
    caplog.set_level(logging.DEBUG)

    failures = send([dead, alive], "title", "body", kind="failure")

    port = dead.split(":")[3].split("/")[0]
    assert failures == [
        f"json://kombify:****@127.0.0.1:{port}/****: the receiver did not take the message"
    ]
    assert [m["type"] for m in receiver.received] == ["failure"]  # the next one still got it
    assert TOKEN not in caplog.text
    assert "the receiver did not take the message" in caplog.text


def test_a_receiver_answering_an_error_is_a_failure() -> None:
    refusing = Receiver(status=500)
    try:
        failures = send([f"json://127.0.0.1:{refusing.port}/x"], "t", "b")
    finally:
        refusing.close()
    assert failures == [
        f"json://127.0.0.1:{refusing.port}/****: the receiver did not take the message"
    ]
    assert refusing.received[0]["type"] == "info"


def test_messages_for_each_event() -> None:
    opened = incident_message(_incident(), "opened")
    assert opened == (
        "kombify: web on node-1 of homelab exited",
        "incident 7: exited, open\n"
        "detected: 2026-12-03 10:00:00 UTC by agent watch: docker event die\n"
        "seen: exit code 137",
    )
    recovered = _incident(
        state="recovered",
        action="health check passed",
        actions=["restarted web-1", "health check passed"],
        recovered_at="2026-12-03T10:00:03.450000+00:00",
        time_to_recovery_s=3.2,
    )
    assert incident_message(recovered, "recovered") == (
        "kombify: web on node-1 of homelab recovered after 3.2 s",
        "incident 7: exited, recovered\n"
        "detected: 2026-12-03 10:00:00 UTC by agent watch: docker event die\n"
        "seen: exit code 137\n"
        "done: restarted web-1; health check passed\n"
        "recovered: 2026-12-03 10:00:03 UTC",
    )
    given_up = _incident(kind="crash-looping", state="given-up", service="")
    assert incident_message(given_up, "given-up")[0] == (
        "kombify: node-1 of homelab gave up (crash-looping)"
    )
