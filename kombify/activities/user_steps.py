"""The step activities of owners' workflows: commands, HTTP checks, webhooks, notifications,
stack runs and service restarts.

Each attempt returns a :class:`StepReport` or raises ``ApplicationError(type=UserStepFailed)``
whose details are one, so the interpreter shows outputs and log lines of failed attempts too.
Secrets (``${{ secrets.NAME }}``) are resolved here, from ``KOMBIFY_SECRET_<NAME>`` in the
worker's environment, and masked in everything that leaves: the workflow's history only ever
holds their names.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

import httpx
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from kombify.activities.agent import AgentActivities
from kombify.activities.heartbeat import heartbeating
from kombify.activities.ssh import node_session
from kombify.db import deployments as runs
from kombify.db import stacks as store
from kombify.db.engine import get_engine
from kombify.db.models import Deployment, DeploymentCreate
from kombify.errors import KombifyError, NotFoundError
from kombify.notify import send
from kombify.operate.reach import StackReach
from kombify.operate.services import act_on_service, exec_in_service
from kombify.settings import Settings
from kombify.specs.quantities import parse_duration
from kombify.userwf.steps import FAILED_TYPE, StepInput, StepReport, bounded

SECRET_PREFIX = "KOMBIFY_SECRET_"
MASK = "****"
_SECRET = re.compile(r"\$\{\{\s*secrets\.([A-Z][A-Z0-9_]*)\s*\}\}")
_POLL = 2.0
_HTTP_TIMEOUT = 30.0


class StepFailed(Exception):
    """A step attempt that did not pass; ``retryable`` False for mistakes a retry cannot fix."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class _Secrets:
    """Resolves ``${{ secrets.NAME }}`` and masks the values it handed out."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def resolve(self, text: str) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            found = os.environ.get(SECRET_PREFIX + name)
            if found is None:
                raise StepFailed(
                    f"secret `{name}` is not set on the worker (environment variable "
                    f"{SECRET_PREFIX}{name})",
                    retryable=False,
                )
            if found:
                self.values.append(found)
            return found

        return _SECRET.sub(value, text)

    def mask(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in sorted(self.values, key=len, reverse=True):
                value = value.replace(secret, MASK)
            return value
        if isinstance(value, dict):
            return {k: self.mask(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.mask(v) for v in value]
        return value


def _statuses(expect: dict[str, Any]) -> list[int] | None:
    status = expect.get("status")
    if status is None:
        return None
    return list(status) if isinstance(status, list) else [int(status)]


def _check_http(expect: dict[str, Any], status: int, body: str) -> str | None:
    """Why the answer does not pass (``None`` when it does)."""
    wanted = _statuses(expect)
    if wanted is None and not 200 <= status < 400:
        return f"status {status}, expected 2xx or 3xx"
    if wanted is not None and status not in wanted:
        return f"status {status}, expected {' or '.join(str(s) for s in wanted)}"
    part = expect.get("body_contains")
    if part and part not in body:
        return f"the body does not contain {part!r}"
    return None


class UserStepActivities:
    """The activities of ``RunUserWorkflow``'s steps, built with the worker's settings."""

    def __init__(self, settings: Settings, agents: AgentActivities) -> None:
        self.settings = settings
        self.reach = StackReach(settings, agents)

    def all(self) -> list[Callable[..., Any]]:
        """Every step activity, for the worker's registry."""
        return [self.run, self.http, self.webhook, self.notify, self.stack_run, self.restart]

    def _session(self) -> Session:
        return Session(get_engine(self.settings.resolved_database_url))

    async def _attempt(
        self, body: Callable[[StepReport, _Secrets], Awaitable[None]], *, beat: bool = True
    ) -> StepReport:
        """One attempt: heartbeating all along (a dead worker is noticed within the workflow's
        heartbeat timeout), secrets masked in what it returns or raises."""
        report = StepReport(attempt=activity.info().attempt)
        secrets = _Secrets()
        try:
            if beat:
                async with heartbeating(activity.info().activity_type):
                    await body(report, secrets)
            else:
                await body(report, secrets)
        except StepFailed as exc:
            report.say(f"failed: {exc}")
            raise ApplicationError(
                secrets.mask(str(exc)),
                secrets.mask(asdict(report)),
                type=FAILED_TYPE,
                non_retryable=not exc.retryable,
            ) from None
        except KombifyError as exc:
            report.say(f"failed: {exc.message}")
            raise ApplicationError(
                secrets.mask(exc.message),
                secrets.mask(asdict(report)),
                type=FAILED_TYPE,
                non_retryable=isinstance(exc, NotFoundError),
            ) from None
        masked: StepReport = StepReport(**secrets.mask(asdict(report)))
        return masked

    # ---- run ------------------------------------------------------------------------------

    @activity.defn(name="UserStepRun")
    async def run(self, request: StepInput) -> StepReport:
        """Run a command on a node of a stack (over SSH) or in one of its services."""

        async def body(report: StepReport, _: _Secrets) -> None:
            action = request.action
            command = action["command"]
            text = command if isinstance(command, str) else shlex.join(command)
            if "service" in action:
                status, out, err = await self._in_service(request, action, command)
            else:
                status, out, err = await self._on_node(request, action, text)
            report.outputs = {
                "stdout": bounded(out.rstrip("\n")),
                "stderr": bounded(err.rstrip("\n")),
                "exit_code": status,
            }
            for line in (out.splitlines() + err.splitlines())[-20:]:
                report.say(line)
            expected = int(action.get("expect_exit", 0))
            if status != expected:
                tail = (err.strip() or out.strip()).splitlines()[-1:] or [""]
                raise StepFailed(f"`{text[:200]}` exited {status} (expected {expected}): {tail[0]}")

        return await self._attempt(body)

    async def _on_node(
        self, request: StepInput, action: dict[str, Any], command: str
    ) -> tuple[int, str, str]:
        deployed = await self.reach.locate(request.organisation, action["stack"])
        if action["node"] not in {n.name for n in deployed.kombination.spec.nodes}:
            known = ", ".join(n.name for n in deployed.kombination.spec.nodes) or "none"
            raise StepFailed(
                f"stack `{action['stack']}` has no node `{action['node']}` (nodes: {known})",
                retryable=False,
            )
        target = await self.reach._pinned(deployed, self.reach.target(deployed, action["node"]))
        async with node_session(target) as session:
            result = await session.run(command, check=False)
        return result.exit_status, result.stdout, result.stderr

    async def _in_service(
        self, request: StepInput, action: dict[str, Any], command: str | list[str]
    ) -> tuple[int, str, str]:
        argv = ["sh", "-c", command] if isinstance(command, str) else list(command)
        limit = activity.info().start_to_close_timeout
        result = await exec_in_service(
            self.settings,
            request.organisation,
            action["stack"],
            action["service"],
            argv,
            timeout=limit.total_seconds() if limit else 600.0,
            reach=self.reach,
        )
        return result.exit_code, result.stdout, result.stderr

    # ---- http and webhook -----------------------------------------------------------------

    async def _request(
        self, action: dict[str, Any], secrets: _Secrets, *, method: str, json_body: bool
    ) -> tuple[int, str]:
        url = secrets.resolve(action["url"])
        headers = {k: secrets.resolve(v) for k, v in action.get("headers", {}).items()}
        kwargs: dict[str, Any] = {}
        if json_body and "body" in action:
            kwargs["json"] = action["body"]
        elif "body" in action:
            kwargs["content"] = action["body"]
        try:
            async with httpx.AsyncClient(timeout=_HTTP_TIMEOUT) as client:
                response = await client.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise StepFailed(f"{method} {action['url']}: {type(exc).__name__}: {exc}") from exc
        return response.status_code, response.text

    @activity.defn(name="UserStepHttp")
    async def http(self, request: StepInput) -> StepReport:
        """Check an HTTP endpoint once, or poll it (``wait``) until the check passes."""

        async def body(report: StepReport, secrets: _Secrets) -> None:
            action = request.action
            method = action.get("method", "GET")
            expect = action.get("expect", {})
            wait = action.get("wait")
            deadline = time.monotonic() + (parse_duration(wait["timeout"]) or 0) if wait else 0.0
            every = (parse_duration(wait.get("interval", "5s")) or 5) if wait else 0
            while True:
                why: str | None
                try:
                    status, text = await self._request(
                        action, secrets, method=method, json_body=False
                    )
                    why = _check_http(expect, status, text)
                    report.outputs = {"status": status, "body": bounded(text)}
                except StepFailed as exc:
                    if not wait:
                        raise
                    why = str(exc)
                report.say(f"{method} {action['url']}: {why or 'passed'}")
                if why is None:
                    return
                if not wait or time.monotonic() + every > deadline:
                    suffix = f" (still, after {wait['timeout']})" if wait else ""
                    raise StepFailed(f"{method} {action['url']}: {why}{suffix}")
                await asyncio.sleep(every)

        return await self._attempt(body)

    @activity.defn(name="UserStepWebhook")
    async def webhook(self, request: StepInput) -> StepReport:
        """POST (or PUT/PATCH) the step's JSON body to a URL."""

        async def body(report: StepReport, secrets: _Secrets) -> None:
            action = request.action
            method = action.get("method", "POST")
            status, text = await self._request(action, secrets, method=method, json_body=True)
            report.outputs = {"status": status, "body": bounded(text)}
            why = _check_http(action.get("expect", {}), status, text)
            report.say(f"{method} {action['url']}: status {status}")
            if why is not None:
                raise StepFailed(f"{method} {action['url']}: {why}")

        return await self._attempt(body)

    # ---- notify ---------------------------------------------------------------------------

    @activity.defn(name="UserStepNotify")
    async def notify(self, request: StepInput) -> StepReport:
        """Send a message to the owner's notification URLs (``KOMBIFY_NOTIFY_URLS``)."""

        async def body(report: StepReport, _: _Secrets) -> None:
            urls = self.settings.notify_url_list
            if not urls:
                raise StepFailed(
                    "no notification URLs: set KOMBIFY_NOTIFY_URLS on the worker "
                    "(docs/notifications.md)",
                    retryable=False,
                )
            action = request.action
            title = action.get("title") or f"kombify workflow: {request.step}"
            failures = await asyncio.to_thread(
                send, urls, title, action["message"], kind=action.get("type", "info")
            )
            report.say(f"sent to {len(urls) - len(failures)} of {len(urls)} receiver(s)")
            if failures:
                raise StepFailed("; ".join(failures))

        return await self._attempt(body)

    # ---- stack runs -----------------------------------------------------------------------

    @activity.defn(name="UserStepStackRun")
    async def stack_run(self, request: StepInput) -> StepReport:
        """Deploy, destroy or roll back a stack as the API does, and wait for the outcome.

        The started run's id is heartbeated: a retried attempt (after a worker crash) waits
        for that run instead of starting another.
        """

        async def body(report: StepReport, _: _Secrets) -> None:
            details = activity.info().heartbeat_details
            deployment_id = str(details[0]) if details else ""
            if not deployment_id:
                deployment_id = await self._start_stack_run(request, report)
            else:
                report.say(f"waiting again for deployment {deployment_id}")
            row = await self._wait_run(deployment_id)
            report.outputs = {
                "deployment": row.id,
                "revision": row.revision,
                "state": row.state,
            }
            report.say(f"{row.kind} of revision {row.revision}: {row.state}")
            if row.state != "succeeded":
                error = str(row.summary.get("error", "")) if row.summary else ""
                raise StepFailed(
                    f"{row.kind} run {row.id} of stack `{request.action['stack']}` ended "
                    f"{row.state}" + (f": {error}" if error else ""),
                    retryable=False,
                )

        return await self._attempt(body, beat=False)

    async def _start_stack_run(self, request: StepInput, report: StepReport) -> str:
        from kombify.operate.history import RollbackCreate, start_rollback
        from kombify.operate.start_run import start_run

        action = request.action
        client = activity.client()
        with self._session() as session:
            org = store.get_organisation(session, slug=request.organisation)
            if request.kind == "rollback":
                started = await start_rollback(
                    session=session,
                    org=org,
                    client=client,
                    settings=self.settings,
                    name=action["stack"],
                    request=RollbackCreate(
                        to=action.get("to"), auto_approve=True, simulate=action.get("simulate")
                    ),
                )
            else:
                stack = store.get_stack(session, organisation_id=org.id, name=action["stack"])
                last = runs.last_rollout(session, stack=stack)
                simulate = action.get("simulate", runs.simulated(last) if last else False)
                started = await start_run(
                    session=session,
                    org=org,
                    client=client,
                    settings=self.settings,
                    name=stack.name,
                    kind=request.kind,
                    options=DeploymentCreate(auto_approve=True, simulate=simulate),
                    force=bool(action.get("force", False)),
                )
        activity.heartbeat(started.id)
        report.say(f"started {request.kind} run {started.id} (revision {started.revision})")
        return started.id

    async def _wait_run(self, deployment_id: str) -> Deployment:
        while True:
            with self._session() as session:
                row = session.get(Deployment, deployment_id)
                if row is None:
                    raise StepFailed(f"deployment {deployment_id} is gone", retryable=False)
                if row.state not in ("running", "pending"):
                    session.expunge(row)
                    return row
            activity.heartbeat(deployment_id)
            await asyncio.sleep(_POLL)

    # ---- restart --------------------------------------------------------------------------

    @activity.defn(name="UserStepRestart")
    async def restart(self, request: StepInput) -> StepReport:
        """Restart a service of a stack (every replica, through the node agents)."""

        async def body(report: StepReport, _: _Secrets) -> None:
            action = request.action
            result = await act_on_service(
                self.settings,
                request.organisation,
                action["stack"],
                action["service"],
                "restart",
                reach=self.reach,
            )
            for replica in result.replicas:
                state = replica.error or f"{replica.state}, {replica.health}"
                report.say(f"{replica.node} replica {replica.replica}: {state}")
            report.outputs = {"replicas": len(result.replicas)}
            if not result.ok:
                raise StepFailed(
                    f"service `{action['service']}` did not come back on every replica"
                )

        return await self._attempt(body)
