"""`kombify status STACK` as a person reads it: what the nodes said, and the exit code."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console

from kombify.cli import deploy_cmds


def _status(*, answered: bool = True, web_state: str = "running") -> dict[str, Any]:
    web = {
        "state": web_state if answered else "unknown",
        "healthy": answered and web_state == "running",
        "health": "healthy" if answered and web_state == "running" else "unknown",
        "desired_replicas": 1,
        "image": "kombify-test/httpd:1",
        "containers": ["13a20ffbfd23aaaa"] if answered else [],
        "details": [
            {
                "id": "13a20ffbfd23aaaa",
                "state": web_state,
                "health": "healthy",
                "image": "kombify-test/httpd:1",
                "since": "2026-12-02T04:16:30.123456789Z",
            }
        ]
        if answered
        else [],
        "endpoints": ["127.0.0.1:32945 -> 80/tcp"],
    }
    return {
        "stack": "rehearsal",
        "revision": 2,
        "deployed_revision": 1,
        "observed": True,
        "error": None,
        "last_deployment": {
            "kind": "deploy",
            "state": "succeeded",
            "started_at": "2026-12-02T04:16:29",
            "finished_at": "2026-12-02T04:16:31",
        },
        "nodes": [
            {
                "name": "box",
                "answered": answered,
                "error": None if answered else "the simulated node is not running",
                "observed_at": "2026-12-02T04:16:32+00:00",
                "services": {"web": web},
            }
        ],
    }


def _printed(status: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> str:
    screen = Console(width=120, no_color=True, record=True)
    monkeypatch.setattr(deploy_cmds, "console", screen)
    deploy_cmds._print_status(status)
    return "\n".join(line.rstrip() for line in screen.export_text().splitlines())


def test_what_runs_with_since_when_and_where_it_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _printed(_status(), monkeypatch) == (
        "rehearsal (revision 1 deployed, revision 2 not deployed): observed at "
        "2026-12-02T04:16:32; last run: deploy succeeded at 2026-12-02T04:16:31\n"
        "node  service  state    health   since                containers    reach\n"
        "box   web      running  healthy  2026-12-02T04:16:30  13a20ffbfd23  127.0.0.1:32945"
    )


def test_a_node_that_did_not_answer_is_named_with_why(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _printed(_status(answered=False), monkeypatch)
    assert "box   web      unknown  unknown  -      -           127.0.0.1:32945" in out
    assert out.endswith("node box did not answer: the simulated node is not running")


@pytest.mark.parametrize(
    ("status", "code"),
    [(_status(), 0), (_status(web_state="exited"), 1), (_status(answered=False), 1)],
)
def test_exit_code_is_zero_only_when_everything_wanted_runs_healthy(
    status: dict[str, Any], code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Client:
        def request(self, *_: Any, **__: Any) -> dict[str, Any]:
            return status

    monkeypatch.setattr(deploy_cmds, "_client", Client)
    monkeypatch.setattr(deploy_cmds, "_print_status", lambda _: None)
    assert deploy_cmds.stack_status("rehearsal", json_output=False) == code


def _swarm_status(*, quorum: bool = True, running: int = 3) -> dict[str, Any]:
    status = _status()
    status["nodes"] = [
        {"name": n, "answered": True, "error": None, "observed_at": "2026-12-02T04:16:32+00:00",
         "services": {}}
        for n in ("m1", "w1")
    ]  # fmt: skip
    tasks = [
        {"node": node, "state": "running", "error": ""} for node in ("m1", "m2", "w1")[:running]
    ]
    status["swarm"] = {
        "manager": "m1", "answered": True, "error": None, "quorum": quorum, "managers": 3,
        "reachable_managers": 3 if quorum else 1, "nodes": 5, "nodes_ready": 5 if quorum else 3,
        "services": {
            "web": {
                "mode": "replicated", "wanted": 3, "running": running,
                "healthy": running == 3, "publish_mode": "host",
                "image": "kombify-test/httpd:1", "tasks": tasks,
                "endpoints": [f"127.0.0.1:3300{i} -> 80/tcp ({t['node']})"
                              for i, t in enumerate(tasks)],
                "update_state": "", "update_message": "",
            }
        },
    }  # fmt: skip
    return status


def test_a_swarm_kit_shows_where_each_task_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _printed(_swarm_status(), monkeypatch)

    assert out.endswith(
        "swarm (asked m1): 3/3 managers reachable, quorum held; 5/5 nodes ready\n"
        "service  mode        replicas  publish  node  task     reach\n"
        "web      replicated  3/3       host     m1    running  127.0.0.1:33000\n"
        "                                        m2    running  127.0.0.1:33001\n"
        "                                        w1    running  127.0.0.1:33002"
    ), out


@pytest.mark.parametrize(
    ("status", "code"),
    [(_swarm_status(), 0), (_swarm_status(quorum=False), 1), (_swarm_status(running=2), 1)],
    ids=["all-running", "quorum-lost", "replica-missing"],
)
def test_a_swarm_kit_is_healthy_only_with_quorum_and_every_replica(
    status: dict[str, Any], code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Client:
        def request(self, *_: Any, **__: Any) -> dict[str, Any]:
            return status

    monkeypatch.setattr(deploy_cmds, "_client", Client)
    monkeypatch.setattr(deploy_cmds, "console", Console(width=120, no_color=True))

    assert deploy_cmds.stack_status("lab", json_output=False) == code
