"""The Temporal activities around the runner, in Temporal's activity test environment."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import ActivityEnvironment

from kombify.activities.tofu import (
    TofuActivities,
    TofuApplyInput,
    TofuDestroyInput,
    TofuPlanInput,
    TofuRunner,
    TofuValidateInput,
)
from tests.integration.tofu.conftest import BROKEN_CONFIG, GOOD_CONFIG, StackFactory, processes_left

CHATTY_CONFIG = """
resource "terraform_data" "chatty" {
  provisioner "local-exec" {
    command = "for i in 1 2 3 4 5 6; do echo line-$i; sleep 0.25; done"
  }
}
"""


def _env(beats: list[Any]) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details[0] if details else None)
    return env


async def test_validate_plan_apply_destroy_as_activities(
    runner: TofuRunner, make_stack: StackFactory
) -> None:
    workdir = make_stack(GOOD_CONFIG)
    logs: list[tuple[str, str]] = []
    activities = TofuActivities(runner, log_sink=lambda s, line: logs.append((s, line)))
    env = _env([])

    validated = await env.run(activities.validate, TofuValidateInput("s1", str(workdir)))
    assert validated.stack_id == "s1" and validated.warnings == []

    planned = await env.run(activities.plan, TofuPlanInput("s1", str(workdir)))
    assert (planned.summary.add, planned.summary.has_changes) == (2, True)

    applied = await env.run(activities.apply, TofuApplyInput("s1", str(workdir)))
    assert applied.result.added == 2 and applied.result.outputs == {"a": "alpha"}

    replanned = await env.run(activities.plan, TofuPlanInput("s1", str(workdir)))
    assert not replanned.summary.has_changes

    destroyed = await env.run(activities.destroy, TofuDestroyInput("s1", str(workdir)))
    assert destroyed.stack_id == "s1"
    assert {stack for stack, _ in logs} == {"s1"}
    assert any("Destroy complete!" in line for _, line in logs)


async def test_heartbeats_are_throttled_and_keep_coming_while_silent(
    runner: TofuRunner, make_stack: StackFactory
) -> None:
    workdir = make_stack(CHATTY_CONFIG)
    beats: list[Any] = []
    activities = TofuActivities(runner, heartbeat_every=0.5)
    await _env(beats).run(activities.apply, TofuApplyInput("s1", str(workdir)))
    # ~1.5 s of output with dozens of lines: a few beats, not one per line.
    assert 2 <= len(beats) <= 8, beats
    assert all(set(beat) == {"lines", "last_line"} for beat in beats)
    assert beats[-1]["lines"] > 6 and "line-" in "".join(b["last_line"] for b in beats)

    silent = make_stack(
        'resource "terraform_data" "q" {\n'
        '  provisioner "local-exec" {\n    command = "sleep 1.6"\n  }\n}\n',
        name="silent",
    )
    beats.clear()
    await _env(beats).run(activities.apply, TofuApplyInput("s2", str(silent)))
    assert len(beats) >= 3  # the silent second and a half was covered too


async def test_an_invalid_config_is_a_non_retryable_application_error(
    runner: TofuRunner, make_stack: StackFactory
) -> None:
    workdir = make_stack(BROKEN_CONFIG)
    with pytest.raises(ApplicationError) as info:
        await _env([]).run(TofuActivities(runner).plan, TofuPlanInput("s1", str(workdir)))
    error = info.value
    assert error.type == "tofu-config-invalid" and error.non_retryable
    [details] = error.details
    assert [(d["file"], d["line"]) for d in details["diagnostics"]] == [
        ("main.tf", 3),
        ("main.tf", 7),
    ]
    assert details["status"] == 422


async def test_a_missing_binary_is_non_retryable(tmp_path: Path) -> None:
    activities = TofuActivities(TofuRunner(binary=str(tmp_path / "nope")))
    with pytest.raises(ApplicationError) as info:
        await _env([]).run(activities.validate, TofuValidateInput("s1", str(tmp_path)))
    assert info.value.type == "tofu-not-found" and info.value.non_retryable


async def test_a_failed_apply_is_retryable_with_the_stderr_tail(
    runner: TofuRunner, make_stack: StackFactory
) -> None:
    workdir = make_stack(
        'resource "terraform_data" "x" {\n'
        '  provisioner "local-exec" {\n    command = "exit 4"\n  }\n}\n'
    )
    with pytest.raises(ApplicationError) as info:
        await _env([]).run(TofuActivities(runner).apply, TofuApplyInput("s1", str(workdir)))
    assert info.value.type == "tofu-apply-failed" and not info.value.non_retryable
    assert "local-exec provisioner error" in info.value.details[0]["stderr_tail"]


async def test_cancelling_the_activity_stops_the_cli(
    runner: TofuRunner, make_stack: StackFactory
) -> None:
    workdir = make_stack(
        'resource "terraform_data" "x" {\n'
        '  provisioner "local-exec" {\n    command = "echo started; sleep 30"\n  }\n}\n'
    )
    started = asyncio.Event()
    activities = TofuActivities(
        runner, log_sink=lambda _s, line: started.set() if line.endswith("started") else None
    )
    env = _env([])
    task = asyncio.create_task(env.run(activities.apply, TofuApplyInput("s1", str(workdir))))
    await asyncio.wait_for(started.wait(), timeout=20)
    env.cancel()
    with pytest.raises((asyncio.CancelledError, CancelledError)):
        await task
    assert processes_left(workdir) == []
    assert (await runner.plan(workdir)).add == 1  # state unlocked
