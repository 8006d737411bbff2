"""Owners' workflow files run by RunUserWorkflow on a real Temporal and a worker process.

Steps talk to a loopback HTTP server made here; the worker is a separate process so one test
can SIGKILL it mid-run, as a crash would.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from kombify.runtime.temporal_client import connect
from tests.support.deploy_env import KombifyEnv
from tests.support.served_api import run_cli, served
from tests.support.userwf_server import StepServer

SECRET = "s3cr3t-hook-token-value"
HEAD = """\
apiVersion: kombify.io/v1
kind: Workflow
metadata:
  name: {name}
spec:
"""


def workflow(name: str, body: str) -> str:
    return HEAD.format(name=name) + textwrap.indent(textwrap.dedent(body), "  ")


@pytest.fixture(scope="module")
def server() -> Iterator[StepServer]:
    served = StepServer()
    yield served
    served.close()


@pytest.fixture(scope="module")
async def env(
    temporal_address: str, tmp_path_factory: pytest.TempPathFactory, server: StepServer
) -> AsyncIterator[KombifyEnv]:
    kombify = KombifyEnv(tmp_path_factory.mktemp("userwf-home"), temporal_address)
    kombify.env["KOMBIFY_SECRET_HOOK_TOKEN"] = SECRET
    # Apprise's json:// posts {title, message, type, ...} to the loopback server.
    kombify.env["KOMBIFY_NOTIFY_URLS"] = server.url.replace("http://", "json://") + "/hook/notify"
    kombify.start_worker()
    yield kombify
    await kombify.close()


async def start(env: KombifyEnv, source: str, **inputs: str) -> str:
    run = await env.call(
        "POST", "/v1/workflow-runs", json={"source": source, "filename": "t.yaml", "inputs": inputs}
    )
    return str(run["id"])


async def finished(env: KombifyEnv, run_id: str, *, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = dict(await env.call("GET", f"/v1/workflow-runs/{run_id}"))
        if run["state"] != "running":
            return run
        await asyncio.sleep(0.5)
    raise AssertionError(f"run {run_id} still running after {timeout}s: {run}")


def steps(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["id"]: step for step in run["steps"]}


async def test_retries_conditions_outputs_and_a_parallel_group(
    env: KombifyEnv, server: StepServer
) -> None:
    source = workflow(
        "checks",
        """\
        inputs:
          base: {required: true}
        steps:
          - id: flaky
            http: {url: "${{ inputs.base }}/flaky/2", expect: {status: 200, body_contains: ok}}
            retries: {attempts: 3, backoff: 1s, factor: 1}
          - id: never
            if: steps.flaky.outputs.status != 200
            webhook: {url: "${{ inputs.base }}/hook/never"}
          - parallel:
              - id: nap
                sleep: 1s
              - id: tell
                webhook:
                  url: "${{ inputs.base }}/hook/tell"
                  headers: {X-Token: "${{ secrets.HOOK_TOKEN }}"}
                  body:
                    status: "${{ steps.flaky.outputs.status }}"
                    said: "${{ steps.flaky.outputs.body }}"
                    never: "${{ steps.never.outcome }}"
          - id: after
            if: steps.tell.outcome == 'succeeded' && steps.nap.outcome == 'succeeded'
            http: {url: "${{ inputs.base }}/status/204", expect: {status: [200, 204]}}
        """,
    )
    run = await finished(env, await start(env, source, base=server.url))

    assert run["state"] == "succeeded", run
    by_id = steps(run)
    assert {k: (v["state"], v["attempts"]) for k, v in by_id.items()} == {
        "flaky": ("succeeded", 3),
        "never": ("skipped", 0),
        "nap": ("succeeded", 1),
        "tell": ("succeeded", 1),
        "after": ("succeeded", 1),
    }
    assert by_id["flaky"]["outputs"] == {"status": 200, "body": "ok"}
    assert server.hits["/flaky/2"] == 3
    assert "/hook/never" not in server.hits
    (call,) = server.hooks["tell"]
    assert call["body"] == {"status": "200", "said": "ok", "never": "skipped"}
    assert call["headers"]["X-Token"] == SECRET
    # The secret's value is nowhere in what kombify keeps of the run.
    history = await (await env_client(env)).get_workflow_handle(run["id"]).fetch_history()
    assert SECRET not in history.to_json()
    assert SECRET not in json.dumps(run)


async def env_client(env: KombifyEnv) -> Any:
    return await connect(env.settings)


async def test_a_failed_step_runs_on_failure_and_skips_the_rest(
    env: KombifyEnv, server: StepServer
) -> None:
    source = workflow(
        "breaks",
        """\
        steps:
          - id: broken
            http: {url: "SERVER/status/404"}
          - id: later
            webhook: {url: "SERVER/hook/later"}
        on_failure:
          - id: report
            webhook:
              url: SERVER/hook/report
              body: {step: "${{ failure.step }}", error: "${{ failure.error }}"}
          - id: page
            notify: {message: "${{ failure.step }} failed", title: nightly, type: failure}
        """.replace("SERVER", server.url),
    )
    run = await finished(env, await start(env, source))

    assert run["state"] == "failed"
    assert run["failure"]["step"] == "broken"
    by_id = steps(run)
    assert [by_id[s]["state"] for s in ("broken", "later", "report", "page")] == [
        "failed",
        "skipped",
        "succeeded",
        "succeeded",
    ]
    assert (
        by_id["broken"]["error"] == f"GET {server.url}/status/404: status 404, expected 2xx or 3xx"
    )
    assert "later" not in server.hooks
    (call,) = server.hooks["report"]
    assert call["body"] == {"step": "broken", "error": by_id["broken"]["error"]}
    (note,) = server.hooks["notify"]
    assert (note["body"]["title"], note["body"]["message"], note["body"]["type"]) == (
        "nightly",
        "broken failed",
        "failure",
    )


async def test_a_killed_worker_resumes_at_the_step_it_was_in(
    env: KombifyEnv, server: StepServer
) -> None:
    source = workflow(
        "survives",
        """\
        steps:
          - id: first
            webhook: {url: "SERVER/hook/first"}
          - id: gate
            http: {url: "SERVER/gate", wait: {timeout: 3m, interval: 1s}}
          - id: last
            webhook: {url: "SERVER/hook/last", body: {gate: "${{ steps.gate.outputs.body }}"}}
        """.replace("SERVER", server.url),
    )
    run_id = await start(env, source)
    deadline = time.monotonic() + 60
    while server.hits["/gate"] < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert server.hits["/gate"] >= 2, "the gate step never started"

    env.kill_worker()
    await asyncio.sleep(0.5)  # a request the dead worker sent may still be being answered
    polled = server.hits["/gate"]
    await asyncio.sleep(2)
    assert server.hits["/gate"] == polled  # nothing polls while no worker runs
    env.start_worker()
    while server.hits["/gate"] == polled and time.monotonic() < deadline + 60:
        await asyncio.sleep(0.2)
    server.open_gate()
    run = await finished(env, run_id)

    assert run["state"] == "succeeded", run
    assert len(server.hooks["first"]) == 1  # the finished step did not run again
    assert [c["body"] for c in server.hooks["last"]] == [{"gate": "open"}]
    assert any("stopped answering" in line for line in steps(run)["gate"]["log"])


async def test_bad_files_and_inputs_are_refused(env: KombifyEnv, tmp_path: Path) -> None:
    del tmp_path
    bad = workflow(
        "bad",
        """\
        steps:
          - id: a
            sleep: 1s
          - id: b
            webhook: {url: "http://127.0.0.1:1/${{ steps.c.outputs.status }}"}
        """,
    )
    response = await env.http.post("/v1/workflow-runs", json={"source": bad, "filename": "b.yaml"})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "path": "spec.steps[1].webhook.url",
            "line": 10,
            "message": "`steps.c.outputs.status`: no step `c`",
        }
    ]
    checked = await env.call("POST", "/v1/workflows/validate", json={"source": bad})
    assert checked == {"valid": False, "errors": response.json()["errors"]}

    needs = workflow("needs", "inputs: {who: {required: true}}\nsteps: [{id: a, sleep: 1s}]\n")
    response = await env.http.post("/v1/workflow-runs", json={"source": needs})
    assert response.status_code == 422
    assert "input `who` is required" in response.json()["detail"]

    response = await env.http.get("/v1/workflow-runs/kombify-userwf.other-org.x-1234")
    assert response.status_code == 404


async def test_the_cli_follows_a_run_and_exits_1_when_it_failed(
    env: KombifyEnv, server: StepServer, tmp_path: Path
) -> None:
    source = workflow(
        "cli-check",
        """\
        steps:
          - id: up
            http: {url: "SERVER/status/200"}
          - id: down
            http: {url: "SERVER/status/503", expect: {status: 200}}
            retries: {attempts: 2, backoff: 1s}
          - id: never
            sleep: 1s
        """.replace("SERVER", server.url),
    )
    (tmp_path / "check.yaml").write_text(source)
    with served(env.app) as url:
        ran = await asyncio.to_thread(
            run_cli, env.home, url, "workflow", "run", str(tmp_path / "check.yaml"), "--follow"
        )
        run_id = ran.stdout.splitlines()[0].split()[1]
        listed = await asyncio.to_thread(run_cli, env.home, url, "workflow", "runs", "--json")
        shown = await asyncio.to_thread(run_cli, env.home, url, "workflow", "show", run_id)

    assert ran.returncode == 1, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0] == f"run {run_id} of `cli-check`"
    # A step may finish between two polls: its "running" line is then not shown.
    assert [line.split(" in ")[0] for line in lines if line.startswith("✓")] == [
        "✓ up (http) succeeded"
    ]
    failed = [line for line in lines if line.startswith("✗ down")]
    assert len(failed) == 1 and failed[0].endswith(
        f"2 attempts: GET {server.url}/status/503: status 503, expected 200"
    )
    assert lines[-1] == "– never (sleep) skipped (an earlier step failed)"
    assert ran.stderr.strip() == f"run {run_id} failed: step `down` failed"
    runs = {r["id"]: r for r in json.loads(listed.stdout)["data"]}
    assert runs[run_id]["state"] == "failed" and runs[run_id]["workflow"] == "cli-check"
    assert shown.returncode == 0
    assert shown.stdout.splitlines()[:2] == [
        f"run {run_id} of `cli-check`: failed",
        "error: step `down` failed",
    ]
