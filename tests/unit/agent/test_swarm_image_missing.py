"""A new swarm service whose image no node has fails at once, naming the image."""

from __future__ import annotations

from typing import Any

from kombify.agent.swarm_services import _image_missing


def _task(state: str, err: str = "") -> dict[str, Any]:
    return {"DesiredState": "shutdown", "Status": {"State": state, "Err": err}}


NO_IMAGE = "No such image: traefik:v3.1.2"


def test_every_wanted_task_failing_twice_on_the_image_names_it() -> None:
    tasks = [_task("rejected", NO_IMAGE) for _ in range(6)]
    reason = _image_missing(tasks, wanted=3)
    assert reason.startswith("image traefik:v3.1.2 is not on the nodes that may run it")


def test_fewer_failures_than_two_per_replica_keep_waiting() -> None:
    # A node may still be loading the image the deploy ships: give every replica two tries.
    assert _image_missing([_task("rejected", NO_IMAGE) for _ in range(5)], wanted=3) == ""


def test_other_failures_among_them_are_not_called_a_missing_image() -> None:
    tasks = [_task("rejected", NO_IMAGE) for _ in range(5)]
    tasks.append(_task("failed", "task: non-zero exit (1)"))
    assert _image_missing(tasks, wanted=3) == ""
