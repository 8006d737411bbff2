"""``kombify schedule …`` as a user runs it: its own process, a served API, a real dev server."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kombify.api.app import create_app
from kombify.settings import Settings
from tests.integration.test_schedules import WORKFLOW
from tests.support.served_api import run_cli, served

TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"


@pytest.fixture
def api(tmp_path: Path, temporal_address: str, task_queue: str) -> Iterator[tuple[Path, str]]:
    """The API (admin token in ``home``) and the home the CLI runs with."""
    home = tmp_path / "home"
    settings = Settings(
        home=home,
        database_url=f"sqlite:///{tmp_path / 'kombify.db'}",
        temporal_address=temporal_address,
        task_queue=task_queue,
    )
    with served(create_app(settings)) as url:
        yield home, url


def test_create_list_show_pause_resume_trigger_delete(
    api: tuple[Path, str], tmp_path: Path
) -> None:
    home, url = api
    (tmp_path / "nap.yaml").write_text(WORKFLOW)

    def cli(*args: str) -> str:
        done = run_cli(home, url, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    made = cli(
        "schedule", "create", "nightly", "--workflow", str(tmp_path / "nap.yaml"),
        "--cron", "0 3 * * *", "--jitter", "5m",
    )  # fmt: skip
    assert re.fullmatch(
        rf"schedule `nightly` created: cron 0 3 \* \* \* \(jitter 5m\); next run {TIME}\n", made
    ), made
    cli("schedule", "create", "often", "--workflow", str(tmp_path / "nap.yaml"), "--every", "6h")

    listed = cli("schedule", "list").splitlines()
    assert listed[0].split() == [
        "name", "workflow", "when", "overlap", "state", "next", "run", "last", "run", "runs"
    ]  # fmt: skip
    assert re.fullmatch(
        rf"nightly +\S+nap\.yaml +cron 0 3 \* \* \* \(jitter 5m\) +skip +active +{TIME} +- +0",
        listed[1].rstrip(),
    ), listed
    assert re.fullmatch(
        rf"often +\S+nap\.yaml +every 6h +skip +active +{TIME} +- +0", listed[2].rstrip()
    ), listed

    assert cli("schedule", "pause", "often", "--note", "holidays") == (
        "schedule `often` paused: every 6h; paused: holidays\n"
    )
    shown = cli("schedule", "show", "often").splitlines()
    assert shown[3] == "state     paused: holidays"
    assert shown[5] == "upcoming (once resumed)" and len(shown) == 5 + 5 + 1 + 2
    assert cli("schedule", "resume", "often").startswith("schedule `often` resumed: every 6h;")
    assert cli("schedule", "trigger", "often").startswith("schedule `often` triggered:")
    deadline = time.monotonic() + 30
    while (described := json.loads(cli("schedule", "show", "often", "--json")))["actions"] < 1:
        assert time.monotonic() < deadline, described
        time.sleep(0.5)
    assert described["recent_runs"][0]["workflow_id"].startswith("kombify-userwf.local.often")
    assert cli("schedule", "delete", "often") == "schedule `often` deleted\n"
    assert cli("schedule", "delete", "nightly") == "schedule `nightly` deleted\n"
    assert cli("schedule", "list") == (
        "no schedules: `kombify schedule create NAME --workflow FILE --every 6h`\n"
    )


def test_create_refuses_a_bad_file_as_workflow_validate_does(
    api: tuple[Path, str], tmp_path: Path
) -> None:
    home, url = api
    bad = tmp_path / "bad.yaml"
    bad.write_text(WORKFLOW.replace("sleep: 1s", "slep: 1s"))

    refused = run_cli(home, url, "schedule", "create", "x", "--workflow", str(bad), "--every", "1h")
    validated = run_cli(home, url, "workflow", "validate", str(bad))

    assert refused.returncode == validated.returncode == 1
    assert refused.stderr == validated.stderr and "slep" in refused.stderr
    assert run_cli(home, url, "schedule", "list").stdout.startswith("no schedules")


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("--every", "0s"), 1, "error: every: `0s` is not a duration"),
        (("--cron", "0 3 * *"), 1, "error: cron: `0 3 * *` has 4 fields: expected 5"),
        ((), 2, "give exactly one of --cron and --every"),
        (("--every", "1h", "--overlap", "queue"), 2, "'queue' is not one of"),
    ],
)
def test_create_names_what_is_wrong(
    api: tuple[Path, str], tmp_path: Path, args: tuple[str, ...], code: int, words: str
) -> None:
    home, url = api
    (tmp_path / "nap.yaml").write_text(WORKFLOW)

    done = run_cli(
        home, url, "schedule", "create", "x", "--workflow", str(tmp_path / "nap.yaml"), *args
    )

    assert done.returncode == code and words in done.stderr, done.stderr
    assert run_cli(home, url, "schedule", "list").stdout.startswith("no schedules")


def test_a_bad_name_is_a_usage_error(api: tuple[Path, str]) -> None:
    home, url = api

    done = run_cli(home, url, "schedule", "show", "Night_ly")

    assert done.returncode == 2 and "schedule name `Night_ly` is not valid" in done.stderr
