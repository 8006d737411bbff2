"""What the benchmarks share: a throwaway KOMBIFY_HOME, the images, a worker that polls.

Each benchmark is a script (``.venv/bin/python benchmarks/<name>.py``); Python puts this
folder first on ``sys.path``, so they import this module as ``_setup``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from kombify import sim
from kombify.settings import get_settings

if TYPE_CHECKING:
    from temporalio.client import Client

REPO = Path(__file__).resolve().parents[1]
# Settings a benchmark must not inherit from the shell: it starts its own of each.
_OWN_SETTINGS = (
    "KOMBIFY_DATABASE_URL",
    "KOMBIFY_TEMPORAL_ADDRESS",
    "KOMBIFY_API_URL",
    "KOMBIFY_TASK_QUEUE",
    "KOMBIFY_ADMIN_TOKEN",
)


def tests_support() -> None:
    """Make ``tests.support`` importable (the repo root on sys.path)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


@contextmanager
def bench_home(prefix: str, *, keep: bool) -> Iterator[Path]:
    """A temp KOMBIFY_HOME for this process; removed afterwards unless ``keep`` or a failure.

    Args:
        prefix: The temp dir's name prefix (``kombify-bench-<name>-``).
        keep: Keep the home even after a successful run (``--keep-home``).
    """
    home = Path(tempfile.mkdtemp(prefix=prefix))
    for var in _OWN_SETTINGS:
        os.environ.pop(var, None)
    os.environ["KOMBIFY_HOME"] = str(home)
    get_settings.cache_clear()
    ok = False
    try:
        yield home
        ok = True
    finally:
        get_settings.cache_clear()
        if ok and not keep:
            shutil.rmtree(home, ignore_errors=True)
        else:
            print(f"KOMBIFY_HOME kept at {home}")


def images() -> tuple[str, str]:
    """The KombiSim node image and the test service image (built when missing)."""
    node_image = sim.ensure_image(progress=print)
    client = sim.docker_client()
    try:
        image = sim.ensure_httpd_image(client)
    finally:
        client.close()
    return node_image, image


async def wait_for_worker(client: Client, queue: str, timeout: float = 60) -> None:
    """Until a worker polls both the workflow and the activity task queue."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    deadline = time.monotonic() + timeout
    for kind in (
        TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    ):
        while True:
            answer = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace="default", task_queue=TaskQueue(name=queue), task_queue_type=kind
                )
            )
            if answer.pollers:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"no worker polls task queue {queue} after {timeout:.0f}s")
            await asyncio.sleep(0.2)
