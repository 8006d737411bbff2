"""kombify's main job end to end: real Temporal, OpenTofu CLI, Docker, SSH and node agent.

One stack goes through its life: deploy, re-apply (nothing changes), an env edit (only that
service's container changes), a health-gated rollback, a removed service, destroy.
"""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import httpx
import pytest

from tests.support.deploy_env import KombifyEnv, published
from tests.support.kombinations import one_node

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(kombify: KombifyEnv) -> str:
    return kombify.new_stack()


async def _get(port: int) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(f"http://127.0.0.1:{port}/", timeout=5)


async def test_deploy_runs_services_that_answer(kombify: KombifyEnv, stack: str) -> None:
    run = await kombify.deploy(one_node(stack))

    assert run["state"] == "succeeded", run
    steps = {s["name"]: s["state"] for s in run["progress"]["steps"]}
    assert steps == {
        "validate": "done",
        "plan": "done",
        "approve": "skipped",
        "apply": "done",
        "agent": "done",
        "network": "skipped",  # no VPN mesh (nor anything else) to join the node to
        "rollout": "done",
        "routes": "skipped",  # the reverse proxy is off: nothing to route
        "record": "done",
    }
    (node,) = run["progress"]["nodes"]
    assert node["services"] == {"notes": "created", "web": "created"}
    assert (await _get(published(stack, "box", 8080))).status_code == 200
    assert (await _get(published(stack, "box", 8081))).status_code == 200
    assert "web" in await kombify.on_node(stack, "box", "hostname && sudo docker ps")

    status = await kombify.call("GET", f"/v1/stacks/{stack}/status")
    services = status["nodes"][0]["services"]
    assert services["web"]["healthy"] is True and len(services["web"]["containers"]) == 1

    logs = await kombify.call("GET", f"/v1/deployments/{run['id']}/logs")
    sources = {line["source"] for line in logs["data"]}
    assert {"tofu", "agent/box"} <= sources
    noise = [line["message"] for line in logs["data"] if "not found" in line["message"]]
    assert noise == []  # e.g. `systemctl: not found` on a node without systemd


def test_what_kombify_keeps_is_the_owners_alone(kombify: KombifyEnv, stack: str) -> None:
    # After a deploy: the database, OpenTofu's state and the manifests (service env values can
    # be secrets) are mode 0600, and KOMBIFY_HOME itself 0700.
    workdir = kombify.home / "stacks" / "local" / stack / "tofu"
    private = [
        kombify.home / "kombify.db",
        workdir / "terraform.tfstate",
        workdir / "main.tf.json",
        *sorted((workdir / "manifests").iterdir()),
    ]
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(kombify.home.stat().st_mode) == 0o700


async def test_reapply_unchanged_changes_no_container(kombify: KombifyEnv, stack: str) -> None:
    before = await kombify.containers(stack, "box")

    run = await kombify.deploy(one_node(stack))

    assert run["state"] == "succeeded", run
    assert run["progress"]["plan"] == {"add": 0, "change": 0, "destroy": 0}
    assert run["progress"]["nodes"][0]["services"] == {"notes": "unchanged", "web": "unchanged"}
    assert await kombify.containers(stack, "box") == before


async def test_env_edit_recreates_only_that_service(kombify: KombifyEnv, stack: str) -> None:
    before = await kombify.containers(stack, "box")

    run = await kombify.deploy(one_node(stack, greeting="bonjour"))

    assert run["state"] == "succeeded", run
    after = await kombify.containers(stack, "box")
    assert after["notes"] == before["notes"]
    assert after["web"] != before["web"] and len(after["web"]) == 1
    env = await kombify.on_node(
        stack, "box", f"sudo docker inspect --format '{{{{.Config.Env}}}}' {after['web'][0]}"
    )
    assert "GREETING=bonjour" in env


async def test_unhealthy_update_is_rolled_back_and_old_one_serves(
    kombify: KombifyEnv, stack: str
) -> None:
    before = await kombify.containers(stack, "box")

    run = await kombify.deploy(
        one_node(stack, greeting="broken", health="http://localhost:80/no-such-page")
    )

    assert run["state"] == "failed"
    assert "web" in run["summary"]["error"] and "1 service(s) unhealthy" in run["summary"]["error"]
    assert run["progress"]["nodes"][0]["services"]["web"] == "rolled-back"
    assert await kombify.containers(stack, "box") == before
    assert (await _get(published(stack, "box", 8080))).status_code == 200


async def test_removed_service_is_removed_from_the_node(kombify: KombifyEnv, stack: str) -> None:
    run = await kombify.deploy(one_node(stack, greeting="bonjour", notes=False))

    assert run["state"] == "succeeded", run
    assert set(await kombify.containers(stack, "box")) == {"web"}


async def test_second_deploy_of_a_running_stack_is_a_409(kombify: KombifyEnv, stack: str) -> None:
    first = await kombify.start(one_node(stack, greeting="again", notes=False))
    try:
        response = await kombify.http.post(
            f"/v1/stacks/{stack}/deployments", json={"auto_approve": True}
        )
        assert response.status_code == 409
        assert response.json()["detail"].startswith(f"a run of stack `{stack}` is already")
    finally:
        assert (await kombify.wait(first))["state"] == "succeeded"


async def test_plan_waits_for_approval_then_applies(kombify: KombifyEnv, stack: str) -> None:
    run = await kombify.start(one_node(stack, greeting="approved", notes=False), auto_approve=False)

    waiting = await kombify.wait_for_state(run, "waiting-approval")
    steps = {s["name"]: s["state"] for s in waiting["progress"]["steps"]}
    assert steps["approve"] == "waiting" and steps["apply"] == "pending"
    # A service change goes through the agent: OpenTofu has nothing to do for it.
    assert waiting["progress"]["plan"] == {"add": 0, "change": 0, "destroy": 0}
    await kombify.call("POST", f"/v1/deployments/{run['id']}/approve")
    final = await kombify.wait(run)

    assert final["state"] == "succeeded", final
    approve = next(s for s in final["progress"]["steps"] if s["name"] == "approve")
    assert approve["detail"] == "approved by api"


async def test_cancel_while_waiting_changes_nothing(kombify: KombifyEnv, stack: str) -> None:
    before = await kombify.containers(stack, "box")
    run = await kombify.start(one_node(stack, greeting="never", notes=False), auto_approve=False)

    await kombify.wait_for_state(run, "waiting-approval")
    await kombify.call("POST", f"/v1/deployments/{run['id']}/cancel")
    final = await kombify.wait(run)

    assert final["state"] == "cancelled"
    assert final["summary"]["error"] == "cancelled by user"
    assert await kombify.containers(stack, "box") == before
    again = await kombify.http.post(f"/v1/deployments/{run['id']}/approve")
    assert again.status_code == 409


async def test_runs_are_searchable_in_temporal_by_stack_and_kind(
    stack: str, temporal_address: str
) -> None:
    from temporalio.client import Client

    client = await Client.connect(temporal_address)
    query = f'KombifyStack = "{stack}" AND KombifyRunKind = "deploy"'
    found = [w async for w in client.list_workflows(query)]

    assert len(found) >= 7
    assert {w.workflow_type for w in found} == {"DeployKombination"}


async def test_history_holds_no_key_material(
    kombify: KombifyEnv, stack: str, temporal_address: str
) -> None:
    from temporalio.client import Client

    client = await Client.connect(temporal_address)
    secrets = [
        kombify.home / "sims" / stack / "id_ed25519",
        kombify.home / "pki" / "ca.key",
        kombify.home / "pki" / "control.key",
    ]
    needles = []
    for path in secrets:
        text = Path(path).read_text()
        body = "".join(line for line in text.splitlines() if "-----" not in line)
        needles += [body[i : i + 24] for i in range(0, len(body) - 24, 24)]
    assert needles
    checked = 0
    async for execution in client.list_workflows(f'WorkflowId = "deploy/local/{stack}"'):
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        dump = (await handle.fetch_history()).to_json()
        assert not [n for n in needles if n in dump], execution.run_id
        checked += 1
    assert checked >= 5  # every deploy of this module's stack


async def test_certificates_are_renewed_before_they_expire(kombify: KombifyEnv, stack: str) -> None:
    from kombify.pki.certs import load_cert

    async def node_serial() -> int:
        pem = await kombify.on_node(stack, "box", "sudo cat /etc/kombify/agent/agent.crt")
        return int(load_cert(pem.encode()).serial_number)

    before = await node_serial()
    quiet = await kombify.call("POST", "/v1/certificates/renew", json={"within_days": 1})
    assert quiet["checked"] == [f"{stack}/box"] and quiet["renewed"] == []
    assert await node_serial() == before

    # A window longer than the certificates' life: every one counts as expiring.
    renewed = await kombify.call("POST", "/v1/certificates/renew", json={"within_days": 3650})

    assert renewed["renewed"] == [f"{stack}/box"] and renewed["unreachable"] == {}
    assert await node_serial() != before
    again = await kombify.deploy(one_node(stack, greeting="again", notes=False))
    assert again["state"] == "succeeded", again  # the agent answers with its new certificate


async def test_recorded_histories_replay_deterministically(
    kombify: KombifyEnv, stack: str, temporal_address: str
) -> None:
    from temporalio.client import Client
    from temporalio.worker import Replayer

    from kombify.workflows.deploy import DeployKombination, DestroyKombination

    client = await Client.connect(temporal_address)
    histories = client.list_workflows(f'WorkflowId = "deploy/local/{stack}"').map_histories()
    results = await Replayer(workflows=[DeployKombination, DestroyKombination]).replay_workflows(
        histories, raise_on_replay_failure=False
    )

    assert results.replay_failures == {}


async def test_destroy_leaves_the_node_clean(kombify: KombifyEnv, stack: str) -> None:
    run = await kombify.destroy(stack)

    assert run["state"] == "succeeded", run
    assert await kombify.containers(stack, "box") == {}
    status = await kombify.call("GET", f"/v1/stacks/{stack}/status")
    assert status["nodes"] == []


async def test_destroy_revokes_the_agent_certificate_and_a_new_deploy_issues_another(
    kombify: KombifyEnv,
) -> None:
    from kombify.pki import RevocationList
    from kombify.pki.certs import load_cert

    stack = kombify.new_stack()
    assert (await kombify.deploy(one_node(stack, notes=False)))["state"] == "succeeded"
    etc = "/etc/kombify/agent"
    # What a copy left on a disk would hold: the agent's certificate and key.
    kept = {
        name: await kombify.on_node(stack, "box", f"sudo base64 -w0 {etc}/{name}")
        for name in ("agent.crt", "agent.key", "ca.crt")
    }
    old = load_cert(base64.b64decode(kept["agent.crt"]))
    crl = RevocationList(kombify.home / "pki")
    assert not crl.is_revoked(old.serial_number)

    run = await kombify.destroy(stack)

    assert run["state"] == "succeeded", run
    entry = crl.lookup(old.serial_number)
    assert entry is not None, "destroy left the agent's certificate valid"
    assert entry.reason == f"destroy of stack `local/{stack}`, deployment {run['id']}"
    logs = await kombify.call("GET", f"/v1/deployments/{run['id']}/logs")
    lines = [(line["source"], line["message"]) for line in logs["data"]]
    assert ("agent/box", f"agent certificate {old.serial_number:x} revoked") in lines
    assert stat.S_IMODE(crl.path.stat().st_mode) == 0o600

    # The copy is put back on the node: the next deploy must not trust it again.
    for name, data in kept.items():
        await kombify.on_node(
            stack,
            "box",
            f"sudo mkdir -p {etc} && echo {data} | base64 -d | sudo tee {etc}/{name} >/dev/null",
        )
    again = await kombify.deploy(one_node(stack, notes=False))

    assert again["state"] == "succeeded", again
    new = load_cert((await kombify.on_node(stack, "box", f"sudo cat {etc}/agent.crt")).encode())
    assert new.serial_number != old.serial_number
    assert not crl.is_revoked(new.serial_number)
    assert (await _get(published(stack, "box", 8080))).status_code == 200


async def test_a_destroy_retried_after_the_revocation_still_removes_everything(
    kombify: KombifyEnv,
) -> None:
    from kombify.pki import RevocationList
    from kombify.pki.certs import load_cert

    stack = kombify.new_stack()
    assert (await kombify.deploy(one_node(stack, notes=False)))["state"] == "succeeded"
    pem = await kombify.on_node(stack, "box", "sudo cat /etc/kombify/agent/agent.crt")
    cert = load_cert(pem.encode())
    # As a first attempt that revoked the certificate and then lost the node would leave it:
    # the agent still runs, and the control plane refuses to talk to it.
    RevocationList(kombify.home / "pki").revoke(cert, identity="box", reason="an earlier try")

    run = await kombify.destroy(stack)

    assert run["state"] == "succeeded", run
    assert await kombify.containers(stack, "box") == {}
    assert not (await kombify.on_node(stack, "box", "pgrep -f kombify[.]agent; true")).strip()
    logs = await kombify.call("GET", f"/v1/deployments/{run['id']}/logs")
    lines = [line["message"] for line in logs["data"] if line["source"] == "agent/box"]
    refused = "the agent's certificate is revoked already: removing kombify's containers"
    assert f"{refused} with docker" in lines
    assert f"agent certificate {cert.serial_number:x} was revoked already (an earlier try)" in lines
