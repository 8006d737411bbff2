"""History, diff and rollback routes against real Temporal and both databases.

No worker polls the test's task queue: a started run stays in progress until the test ends it
and records its outcome as the worker would (``DeployActivities.record``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from temporalio.client import Client

from kombify.activities.deploy import DeployActivities
from kombify.api.app import create_app
from kombify.contracts.deploy import NodeProgress, RecordInput
from kombify.settings import Settings
from kombify.workflows.deploy import deploy_workflow_id

SECRET = "pa55-w0rd-never-shown"


def _source(name: str, version: str, *, password: str = SECRET) -> str:
    return (
        "apiVersion: kombify.io/v1\nkind: Kombination\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n  stackkit: base-homelab\n"
        "  nodes:\n    - {name: box, provider: sim}\n"
        "  services:\n    reverse-proxy: {enabled: false}\n"
        "    web:\n      image: kombify-test/httpd:1\n"
        f'      command: ["/bin/busybox", "sh", "-c", "echo {version} > /www/index.html"]\n'
        f'      env: {{DB_PASSWORD: "{password}", VERSION: "{version}"}}\n'
    )


async def _terminate(address: str, workflow_id: str) -> None:
    client = await Client.connect(address)
    try:
        await client.get_workflow_handle(workflow_id).terminate("test over")
    except Exception:  # noqa: BLE001 - already ended, or never started
        pass


@pytest.fixture
def settings(database_url: str, temporal_address: str, task_queue: str, tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path,
        database_url=database_url,
        temporal_address=temporal_address,
        task_queue=task_queue,
    )


@pytest.fixture
def stack_name(settings: Settings) -> Iterator[str]:
    name = f"kh-{uuid.uuid4().hex[:8]}"
    yield name
    assert settings.temporal_address
    asyncio.run(_terminate(settings.temporal_address, deploy_workflow_id("local", name)))


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app, headers={"Authorization": f"Bearer {app.state.admin_token}"}) as c:
        yield c


def _deployed(api: TestClient, settings: Settings, name: str, state: str = "succeeded") -> str:
    """Deploy the current revision; the run ends with ``state`` as a worker would record it."""
    response = api.post(f"/v1/stacks/{name}/deployments", json={"auto_approve": True})
    assert response.status_code == 202, response.text
    run_id = str(response.json()["id"])
    assert settings.temporal_address
    asyncio.run(_terminate(settings.temporal_address, deploy_workflow_id("local", name)))
    node = NodeProgress("box", state="rolled-out", provider="sim", role="main", services={})
    DeployActivities(settings).record(
        RecordInput(deployment_id=run_id, state=state, error=None, nodes=[node], plan=None)
    )
    return run_id


def _two_revisions(api: TestClient, name: str) -> None:
    assert api.post("/v1/stacks", json={"source": _source(name, "v1")}).status_code == 201
    changed = _source(name, "v2", password="an0ther-secret")
    assert api.put(f"/v1/stacks/{name}", json={"source": changed}).status_code == 200


def test_history_lists_revisions_with_runs_and_changes(
    api: TestClient, settings: Settings, stack_name: str
) -> None:
    assert api.post("/v1/stacks", json={"source": _source(stack_name, "v1")}).status_code == 201
    first_run = _deployed(api, settings, stack_name)
    changed = _source(stack_name, "v2", password="an0ther-secret")
    assert api.put(f"/v1/stacks/{stack_name}", json={"source": changed}).status_code == 200
    failed_run = _deployed(api, settings, stack_name, state="failed")

    response = api.get(f"/v1/stacks/{stack_name}/revisions")

    assert response.status_code == 200, response.text
    page = response.json()
    assert (page["current_revision"], page["deployed_revision"], page["count"]) == (2, 2, 2)
    second, first = page["data"]
    assert (second["revision"], second["current"], second["deployed"]) == (2, True, True)
    assert [(r["id"], r["state"]) for r in second["runs"]] == [(failed_run, "failed")]
    assert second["outcome"] == "failed"
    assert second["summary"] == "~service web (env, command)"
    assert second["changes"] == [
        {
            "kind": "changed",
            "object": "service",
            "name": "web",
            "details": ["env: ~DB_PASSWORD, ~VERSION (values hidden)", "command: changed"],
        }
    ]
    assert (first["revision"], first["current"], first["deployed"]) == (1, False, False)
    assert [(r["id"], r["state"]) for r in first["runs"]] == [(first_run, "succeeded")]
    assert first["summary"] == "first revision" and first["previous"] is None
    assert SECRET not in response.text and "an0ther-secret" not in response.text


def test_one_revisions_source(api: TestClient, stack_name: str) -> None:
    _two_revisions(api, stack_name)

    shown = api.get(f"/v1/stacks/{stack_name}/revisions/1")
    missing = api.get(f"/v1/stacks/{stack_name}/revisions/7")
    zero = api.get(f"/v1/stacks/{stack_name}/revisions/0")

    assert shown.status_code == 200
    assert shown.json()["source"] == _source(stack_name, "v1")  # as the stack's own route does
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["detail"] == f"stack `{stack_name}` has no revision 7"
    assert zero.status_code == 422


def test_diff_defaults_to_what_the_next_apply_changes(
    api: TestClient, settings: Settings, stack_name: str
) -> None:
    _two_revisions(api, stack_name)

    never_deployed = api.get(f"/v1/stacks/{stack_name}/diff").json()
    _deployed(api, settings, stack_name)  # deploys revision 2
    same = api.get(f"/v1/stacks/{stack_name}/diff").json()
    back = api.get(f"/v1/stacks/{stack_name}/diff", params={"to": 1})
    chosen = api.get(f"/v1/stacks/{stack_name}/diff", params={"from": 1, "to": 2}).json()
    unknown = api.get(f"/v1/stacks/{stack_name}/diff", params={"to": 9})

    assert (never_deployed["from_revision"], never_deployed["to_revision"]) == (None, 2)
    assert {(c["kind"], c["name"]) for c in never_deployed["changes"]} >= {
        ("added", "web"),
        ("added", "box"),
    }
    assert (same["from_revision"], same["to_revision"], same["identical"]) == (2, 2, True)
    assert same["changes"] == [] and same["text"] == "" and same["summary"] == "no changes"
    assert back.status_code == 200
    assert (back.json()["from_revision"], back.json()["to_revision"]) == (2, 1)
    assert '-      command: ["/bin/busybox", "sh", "-c", "echo v2' in back.json()["text"]
    assert '+      command: ["/bin/busybox", "sh", "-c", "echo v1' in back.json()["text"]
    assert "DB_PASSWORD: ****" in back.json()["text"]
    assert SECRET not in back.text and "an0ther-secret" not in back.text
    assert (chosen["from_revision"], chosen["to_revision"]) == (1, 2)
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == f"stack `{stack_name}` has no revision 9"


def test_rollback_deploys_an_earlier_file_as_the_next_revision(
    api: TestClient, settings: Settings, stack_name: str
) -> None:
    assert api.post("/v1/stacks", json={"source": _source(stack_name, "v1")}).status_code == 201
    _deployed(api, settings, stack_name)
    changed = _source(stack_name, "v2", password="an0ther-secret")
    assert api.put(f"/v1/stacks/{stack_name}", json={"source": changed}).status_code == 200
    _deployed(api, settings, stack_name)

    response = api.post(f"/v1/stacks/{stack_name}/rollback", json={})  # default: revision 1

    assert response.status_code == 202, response.text
    run = response.json()
    assert run["revision"] == 3 and run["kind"] == "deploy" and run["state"] == "running"
    assert run["summary"]["options"] == {
        "auto_approve": False,
        "simulate": False,
        "rollback_of": 1,
    }
    shown = api.get(f"/v1/stacks/{stack_name}").json()
    assert (shown["current_revision"], shown["source"]) == (3, _source(stack_name, "v1"))
    page = api.get(f"/v1/stacks/{stack_name}/revisions").json()
    newest = page["data"][0]
    assert (newest["revision"], newest["rollback_of"], newest["current"]) == (3, 1, True)
    assert [(r["state"], r["rollback_of"]) for r in newest["runs"]] == [("running", 1)]
    assert page["deployed_revision"] == 2  # until the rollback's run ended

    again = api.post(f"/v1/stacks/{stack_name}/rollback", json={"to": 2})

    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["detail"] == (
        f"cannot roll back stack `{stack_name}`: deployment {run['id']} (deploy) is in "
        f"progress; wait for it, or stop it with `kombify cancel {run['id']}`"
    )
    assert api.get(f"/v1/stacks/{stack_name}/revisions").json()["count"] == 3
    log = api.get("/v1/orgs/local/activity").json()["data"]
    actions = [(e["action"], e["object_id"], e["outcome"]) for e in log]
    assert ("POST /v1/stacks/{name}/rollback", stack_name, "ok") in actions
    assert ("POST /v1/stacks/{name}/rollback", stack_name, "refused") in actions


def test_rollback_refusals_name_what_is_missing(
    api: TestClient, settings: Settings, stack_name: str
) -> None:
    assert api.post("/v1/stacks", json={"source": _source(stack_name, "v1")}).status_code == 201

    not_deployed = api.post(f"/v1/stacks/{stack_name}/rollback", json={})
    unknown = api.post(f"/v1/stacks/{stack_name}/rollback", json={"to": 5})
    zero = api.post(f"/v1/stacks/{stack_name}/rollback", json={"to": 0})
    no_stack = api.post("/v1/stacks/no-such-lab/rollback", json={"to": 1})
    _deployed(api, settings, stack_name)
    nothing_earlier = api.post(f"/v1/stacks/{stack_name}/rollback")

    assert not_deployed.status_code == 409
    assert not_deployed.json()["detail"] == (
        f"stack `{stack_name}` is not deployed, so there is nothing to roll back from: "
        f"name a revision with `kombify rollback {stack_name} --to REVISION`"
    )
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == f"stack `{stack_name}` has no revision 5"
    assert zero.status_code == 422
    assert no_stack.status_code == 404
    assert nothing_earlier.status_code == 409
    assert nothing_earlier.json()["detail"] == (
        f"stack `{stack_name}` has no revision before 1 that deployed successfully and "
        "differs from it: name one with `--to REVISION` (`kombify history` lists them)"
    )
    assert api.get(f"/v1/stacks/{stack_name}/revisions").json()["count"] == 1
