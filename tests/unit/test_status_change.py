"""What counts as a change of a stack's status for the live stream (docs/status.md)."""

from __future__ import annotations

import copy
from typing import Any

from kombify.api.status_stream import change_key


def _status() -> dict[str, Any]:
    web = {"state": "running", "health": "healthy", "healthy": True, "containers": ["abc"]}
    node = {"name": "box", "answered": True, "error": None, "observed_at": "2026-01-01T00:00:00Z"}
    return {"stack": "lab", "revision": 1, "nodes": [{**node, "services": {"web": web}}]}


def test_only_the_moment_of_asking_is_no_change() -> None:
    later = _status()
    later["nodes"][0]["observed_at"] = "2026-01-01T00:00:05Z"
    assert change_key(later) == change_key(_status())
    assert later["nodes"][0]["observed_at"].endswith("05Z")  # the status itself is kept whole


def test_state_health_containers_and_answers_are_changes() -> None:
    for path, value in (
        (("services", "web", "state"), "exited"),
        (("services", "web", "health"), "unhealthy"),
        (("services", "web", "containers"), ["def"]),
        (("answered",), False),
        (("error",), "not running"),
    ):
        changed = copy.deepcopy(_status())
        where = changed["nodes"][0]
        for part in path[:-1]:
            where = where[part]
        where[path[-1]] = value
        assert change_key(changed) != change_key(_status()), path
