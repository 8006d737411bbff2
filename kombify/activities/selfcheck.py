"""The probe a worker answers for ``SelfCheck``: who it is and whether its database answers."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from temporalio import activity

from kombify.db.engine import check_database
from kombify.settings import get_settings


@dataclass(frozen=True)
class WorkerProbe:
    """Identity and health of one worker process."""

    host: str
    pid: int
    database_ok: bool
    database_error: str | None


@activity.defn(name="ProbeWorker")
async def probe_worker() -> WorkerProbe:
    """Report this worker's host, pid and database reachability."""
    error = check_database(get_settings().resolved_database_url)
    return WorkerProbe(
        host=socket.gethostname(), pid=os.getpid(), database_ok=error is None, database_error=error
    )
