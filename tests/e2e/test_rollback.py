"""Rollback end to end: an older revision serves again, through the normal deploy run.

Real Temporal, OpenTofu CLI, Docker, SSH and node agent on one KombiSim node. Revision 1's
service answers "v1", revision 2's "v2"; ``rollback --to 1`` stores revision 1's file as
revision 3 and deploys it behind the health gate, and the history shows all three runs.
"""

from __future__ import annotations

import httpx
import pytest

from tests.support.deploy_env import KombifyEnv, published
from tests.support.kombinations import one_node

pytestmark = [pytest.mark.docker, pytest.mark.slow]

_SERVE = (
    "image: kombify-test/httpd:1\n"
    '      command: ["/bin/busybox", "sh", "-c", '
    "\"trap 'exit 0' TERM; echo {version} > /www/index.html; "
    '/bin/busybox httpd -f -p 80 -h /www & wait"]'
)


def _answering(stack: str, version: str) -> str:
    """The one-node stack whose ``web`` answers ``version`` on port 8080."""
    return one_node(stack, notes=False, healing="{enabled: false}").replace(
        "image: kombify-test/httpd:1", _SERVE.format(version=version)
    )


async def _answer(stack: str) -> str:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{published(stack, 'box', 8080)}/", timeout=5)
    response.raise_for_status()
    return response.text.strip()


async def test_rollback_serves_the_old_revision_again(kombify: KombifyEnv) -> None:
    stack = kombify.new_stack()
    first = await kombify.deploy(_answering(stack, "v1"))
    assert first["state"] == "succeeded", first
    assert await _answer(stack) == "v1"
    second = await kombify.deploy(_answering(stack, "v2"))
    assert second["state"] == "succeeded", second
    assert await _answer(stack) == "v2"

    preview = await kombify.call("GET", f"/v1/stacks/{stack}/diff", params={"to": 1})
    started = await kombify.call(
        "POST", f"/v1/stacks/{stack}/rollback", json={"to": 1, "auto_approve": True}
    )
    run = await kombify.wait(started)

    assert preview["summary"] == "~service web (command)"
    assert run["state"] == "succeeded", run
    assert run["revision"] == 3 and run["summary"]["options"]["rollback_of"] == 1
    steps = {s["name"]: s["state"] for s in run["progress"]["steps"]}
    assert steps["plan"] == "done" and steps["rollout"] == "done"
    # The health gate passed: the new container answered its check before the old one went.
    assert run["progress"]["nodes"][0]["services"] == {"web": "updated"}
    assert await _answer(stack) == "v1"
    status = await kombify.call("GET", f"/v1/stacks/{stack}/status")
    web = status["nodes"][0]["services"]["web"]
    assert status["deployed_revision"] == 3 and web["healthy"] is True

    history = await kombify.call("GET", f"/v1/stacks/{stack}/revisions")
    rows = [
        (r["revision"], r["rollback_of"], r["deployed"], [x["state"] for x in r["runs"]])
        for r in history["data"]
    ]
    assert rows == [
        (3, 1, True, ["succeeded"]),
        (2, None, False, ["succeeded"]),
        (1, None, False, ["succeeded"]),
    ]
    assert [r["summary"] for r in history["data"]] == [
        "~service web (command)",
        "~service web (command)",
        "first revision",
    ]
    after = await kombify.call("GET", f"/v1/stacks/{stack}/diff")
    assert after["identical"] is True  # the next apply changes nothing: 3 is current
    await kombify.destroy(stack)
