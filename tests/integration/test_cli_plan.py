"""`kombify plan` and `kombify plans` as processes against a real API with billing on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.test_api_entitlements import BILLING, play
from tests.support.accounts import OWNER, Installation, installation
from tests.support.openapi_walk import kombination
from tests.support.served_api import run_cli, served


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[Installation, str, str]]:
    """The installation, its URL and an API key of the owner in `local`."""
    with installation(tmp_path, f"sqlite:///{tmp_path / 'cli.db'}", **BILLING) as inst:
        owner = inst.login(OWNER)
        key = owner.post("/v1/api-keys", json={"name": "cli", "scope": "deploy"}).json()["key"]
        with served(inst.app) as url:
            yield inst, url, key


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def test_plan_shows_limits_usage_and_frozen_stacks(api: tuple[Installation, str, str]) -> None:
    inst, url, key = api
    play(inst, "pro")
    owner = inst.login(OWNER)
    for name in ("a-old", "b-new"):
        assert owner.post("/v1/stacks", json={"source": kombination(name)}).status_code == 201
    end = datetime(2027, 1, 3, 12, 0, tzinfo=UTC)
    play(inst, "free", status="active", current_period_end=end)
    home = inst.settings.home / "cli-home"

    done = run_cli(home, url, "plan", "--json", KOMBIFY_API_KEY=key)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body == owner.get("/v1/orgs/local/entitlements").json()
    assert (body["plan"]["id"], body["frozen_stacks"]) == ("free", ["b-new"])
    assert body["current_period_end"].startswith("2027-01-03T12:00:00")

    text = run_cli(home, url, "plan", KOMBIFY_API_KEY=key)
    assert text.returncode == 0, text.stderr
    assert _lines(text.stdout) == [
        "local: Free plan, status active",
        "stacks                 2 of 1",
        "simulations            0 of 1",
        "kombisim               basic (up to 3 nodes each)",
        "stackkits              base-homelab only",
        "members                1 (team collaboration: no)",
        "own identity provider  no",
        "priority support       no",
        "frozen (no new deploys until you upgrade or delete stacks; destroy works): b-new",
        "period ends: 2027-01-03 12:00:00 UTC",
    ]


def test_plans_lists_the_plans(api: tuple[Installation, str, str]) -> None:
    inst, url, key = api
    home = inst.settings.home / "cli-home"
    done = run_cli(home, url, "plans", "--json", KOMBIFY_API_KEY=key)
    assert done.returncode == 0, done.stderr
    assert [p["id"] for p in json.loads(done.stdout)["data"]] == [
        "free", "pro", "team", "enterprise",
    ]  # fmt: skip
    text = run_cli(home, url, "plans", KOMBIFY_API_KEY=key)
    assert text.returncode == 0, text.stderr
    assert _lines(text.stdout) == [
        "plan        price        stacks     kombisim  stackkits          team  sso  support",
        "free        $0           1          basic     base-homelab only  no    no",
        "pro         $29 a month  5          full      every kit          no    no",
        "team        $99 a month  20         full      every kit          yes   no   priority",
        "enterprise  custom       unlimited  full      every kit          yes   yes  priority",
    ]


def test_a_refusal_reads_as_one_line(api: tuple[Installation, str, str]) -> None:
    inst, url, key = api
    home = inst.settings.home / "cli-home"
    source = home.parent / "second.yaml"
    owner = inst.login(OWNER)
    assert owner.post("/v1/stacks", json={"source": kombination("first")}).status_code == 201
    source.write_text(kombination("second"))
    done = run_cli(home, url, "stacks", "create", str(source), KOMBIFY_API_KEY=key)
    assert done.returncode == 1
    assert _lines(done.stderr) == [
        "error: the Free plan allows 1 stack and `local` has 1: the Pro plan allows 5 stacks; "
        "upgrade, or delete a stack first"
    ]


def test_apply_of_a_kit_beyond_the_plan_names_the_file_line_and_plan(
    api: tuple[Installation, str, str], tmp_path: Path
) -> None:
    inst, url, key = api
    ha = Path(__file__).parents[1] / "data" / "spec" / "examples" / "ha-homelab.yaml"
    file = tmp_path / "kombination.yaml"
    file.write_text(ha.read_text())
    line = 1 + ha.read_text().splitlines().index("  stackkit: ha-homelab")
    home = inst.settings.home / "cli-home"

    for args in (("apply", str(file), "--detach"), ("stacks", "create", str(file))):
        done = run_cli(home, url, *args, KOMBIFY_API_KEY=key)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        out = done.stdout + done.stderr
        assert f"{file}:{line}: spec.stackkit: StackKit `ha-homelab` is not in the Free plan" in out
        assert f"`{file}` needs the Pro plan: see `kombify plans`" in out
    assert inst.login(OWNER).get("/v1/stacks").json()["count"] == 0  # nothing stored
