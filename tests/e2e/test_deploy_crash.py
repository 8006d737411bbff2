"""Crashes in the middle of a deploy: the run resumes and nothing is created twice."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kombify.runtime.temporal_dev import build_command, load_config, wait_until_serving
from kombify.settings import Settings
from tests.support.deploy_env import KombifyEnv
from tests.support.ports import free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow]

STACK = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {{name: {name}}}
spec:
  stackkit: base-homelab
  nodes:
    - {{name: box, provider: sim}}
  services:
    reverse-proxy: {{enabled: false}}
    web:
      image: kombify-test/httpd:1
      ports: [{{container: 80, host: 8080}}]
      healthcheck: {{http: "http://localhost:80/", interval: 1s}}
"""


async def test_killed_worker_mid_deploy_resumes_without_duplicates(kombify: KombifyEnv) -> None:
    stack = kombify.new_stack()
    run = await kombify.start(STACK.format(name=stack))
    await kombify.wait_for_step(run, "agent")

    kombify.kill_worker()
    await asyncio.sleep(1)
    kombify.start_worker()
    final = await kombify.wait(run)

    assert final["state"] == "succeeded", final
    assert {k: len(v) for k, v in (await kombify.containers(stack, "box")).items()} == {"web": 1}


class OwnTemporal:
    """A dev server of this test's own, stopped and started again on the same SQLite file."""

    def __init__(self, home: Path) -> None:
        settings = Settings(home=home, temporal_port=free_port(), temporal_ui_port=free_port())
        self.config = load_config(settings)
        self.log = home / "temporal.log"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        assert self.config.db_filename is not None
        self.config.db_filename.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                build_command(self.config), stdout=log, stderr=subprocess.STDOUT
            )
        await wait_until_serving(self.config.address, "default", timeout=60)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


@pytest.fixture
def own_temporal(tmp_path: Path) -> Iterator[OwnTemporal]:
    server = OwnTemporal(tmp_path)
    yield server
    server.stop()


async def test_temporal_restart_mid_deploy_resumes(
    own_temporal: OwnTemporal, tmp_path: Path
) -> None:
    await own_temporal.start()
    env = KombifyEnv(tmp_path / "home", own_temporal.config.address)
    stack = env.new_stack()
    env.start_worker()
    try:
        run = await env.start(STACK.format(name=stack))
        await env.wait_for_step(run, "apply")

        own_temporal.stop()
        await asyncio.sleep(2)
        await own_temporal.start()
        env.app.state.temporal = None  # the API reconnects, like after any outage
        final = await env.wait(run)

        assert final["state"] == "succeeded", final
        counts = {k: len(v) for k, v in (await env.containers(stack, "box")).items()}
        assert counts == {"web": 1}
    finally:
        await env.close()
