"""``TofuRunner``: the OpenTofu CLI as typed async calls on a stack's work directory.

Layout of a work directory (one per stack; the unifier writes the ``*.tf.json`` files):

```
<workdir>/
  *.tf.json, *.auto.tfvars.json   configuration and variable values (written by the unifier)
  terraform.tfstate               the stack's state (local backend, default path)
  .terraform/                     what ``init`` installs
  .kombify/lock                   kombify's cross-process lock (flock)
  .kombify/tfplan                 the plan saved by ``plan``, consumed by ``apply``
```
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from kombify.settings import get_settings
from kombify.tofu.binary import find_tofu_binary
from kombify.tofu.errors import (
    TofuApplyFailed,
    TofuCommandError,
    TofuConfigInvalid,
    TofuDestroyFailed,
    TofuInitFailed,
    TofuLockedError,
    TofuNotFound,
    TofuPlanFailed,
    TofuPlanStale,
)
from kombify.tofu.lock import stack_lock
from kombify.tofu.models import ApplyResult, Diagnostic, PlanSummary
from kombify.tofu.parse import (
    PLAN_STALE_MARKER,
    STATE_LOCKED_MARKER,
    TofuOutputError,
    load_json,
    parse_change_summary,
    parse_diagnostic_events,
    parse_human_diagnostics,
    parse_outputs_json,
    parse_plan_json,
    parse_validate_json,
)
from kombify.tofu.process import TAIL_LINES, Completed, LineCallback, run_cli
from kombify.tofu.redact import Redactor, discover_secrets

PLAN_FILE = Path(".kombify") / "tfplan"
# The events of a ``-json`` stream kept for parsing; the rest is only shown (``@message``).
_KEPT_EVENTS = frozenset({"diagnostic", "change_summary"})
# What the last successful ``init`` saw (see ``ensure_init``).
INIT_STAMP = Path(".kombify") / "init.sha256"

_FAILURES: dict[str, type[TofuCommandError]] = {
    "init": TofuInitFailed,
    "plan": TofuPlanFailed,
    "show": TofuPlanFailed,
    "apply": TofuApplyFailed,
    "destroy": TofuDestroyFailed,
}

_CLI_CONFIG = (
    "# Written by kombify: the OpenTofu CLI runs with this (empty) configuration so that no\n"
    "# credentials, mirrors or overrides from a user's ~/.terraformrc leak into a stack.\n"
)


class TofuRunner:
    """Runs the OpenTofu (or Terraform) CLI in stack work directories.

    One runner serves any number of stacks; per-stack state lives in each work directory.
    Mutating commands (init, plan, apply, destroy) hold the stack's lock; a second one on the
    same work directory, in this process or another, raises :class:`TofuLockedError`.

    Args:
        binary: CLI name or path; default ``KOMBIFY_TOFU_BIN``, then ``tofu``, then
            ``terraform``. Resolved at the first command, so a worker without the CLI
            still starts (its other activities work) and reports the missing binary per run.
        env: Extra environment for the CLI; wins over what kombify sets.
        secrets: Values to mask in every line, error and output, for every stack.
        home: Directory under which kombify keeps ``tofu/cli.tfrc`` (the CLI config) and
            ``tofu/plugin-cache``; default the settings' ``home`` (``KOMBIFY_HOME``).
        lock_timeout: Seconds to wait for a busy stack before raising ``TofuLockedError``.
        kill_grace: Seconds between SIGINT and SIGKILL when a run is cancelled.
    """

    def __init__(
        self,
        *,
        binary: str | None = None,
        env: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
        home: Path | None = None,
        lock_timeout: float = 0.0,
        kill_grace: float = 10.0,
    ) -> None:
        self._binary_choice = binary
        self._binary: str | None = None
        self._env = dict(env or {})
        self._secrets = dict(secrets or {})
        self._home = home
        self.lock_timeout = lock_timeout
        self.kill_grace = kill_grace

    # -- set-up ---------------------------------------------------------------------------

    @property
    def binary(self) -> str:
        """Absolute path of the CLI (looked up once).

        Raises:
            TofuNotFound: When no CLI can be found.
        """
        if self._binary is None:
            self._binary = find_tofu_binary(self._binary_choice)
        return self._binary

    def environment(self) -> dict[str, str]:
        """The environment every command runs with.

        The worker's ``TF_*`` variables are dropped (a user's ``TF_LOG``, ``TF_WORKSPACE`` or
        ``TF_VAR_*`` must not change what a stack does), the CLI config is kombify's empty
        file, and the CLI's update check is off (it would call out to the internet).
        """
        home = (self._home or get_settings().home) / "tofu"
        cache = home / "plugin-cache"
        cache.mkdir(parents=True, exist_ok=True)
        cli_config = home / "cli.tfrc"
        if not cli_config.exists():
            cli_config.write_text(_CLI_CONFIG)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "CHECKPOINT_"))}
        env.update(
            TF_IN_AUTOMATION="1",
            TF_INPUT="0",
            CHECKPOINT_DISABLE="1",
            TF_CLI_CONFIG_FILE=str(cli_config),
            TF_PLUGIN_CACHE_DIR=str(cache),
        )
        env.update(self._env)
        return env

    @staticmethod
    def plan_file(workdir: Path) -> Path:
        """Where ``plan`` saves the plan that ``apply`` then applies."""
        return workdir.resolve() / PLAN_FILE

    # -- commands -------------------------------------------------------------------------

    async def version(self) -> str:
        """The CLI's version number (``1.11.4``)."""
        completed = await self._run(Path.cwd(), "version", ["-json"], capture_stdout=True)
        self._check(completed, "version", Path.cwd(), Redactor())
        document = load_json(completed.stdout, what="version -json")
        return str(document.get("terraform_version", "unknown"))

    async def init(
        self,
        workdir: Path,
        *,
        on_line: LineCallback | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> None:
        """``init``: prepare the work directory (backend, modules, providers from the cache).

        Raises:
            TofuConfigInvalid: The configuration has errors (with file and line).
            TofuInitFailed: Anything else, e.g. a provider that cannot be installed.
            TofuLockedError: Another run holds the stack.
        """
        async with stack_lock(workdir, operation="init", timeout=self.lock_timeout):
            await self._checked(workdir, "init", ["-input=false", "-no-color"], on_line, secrets)

    def _init_fingerprint(self, workdir: Path) -> str:
        """What ``init`` depends on: the configuration files, the lock file and the CLI."""
        digest = hashlib.sha256(str(self.binary).encode())
        for path in sorted(workdir.glob("*.tf*")) + sorted(workdir.glob(".terraform.lock.hcl")):
            if path.is_file():
                digest.update(path.name.encode() + b"\0" + path.read_bytes())
        digest.update(b"initialised" if (workdir / ".terraform").exists() else b"bare")
        return digest.hexdigest()

    async def ensure_init(
        self,
        workdir: Path,
        *,
        on_line: LineCallback | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> bool:
        """``init`` unless the last successful one saw exactly this configuration and CLI.

        A deploy plans and then applies the same files: the second ``init`` would only cost
        a CLI start. Any change to a ``*.tf``/``*.tf.json`` file, the lock file, the CLI or
        the ``.terraform`` directory's presence runs it again.

        Returns:
            Whether ``init`` ran.
        """
        stamp = workdir / INIT_STAMP
        want = self._init_fingerprint(workdir)
        if stamp.is_file() and stamp.read_text() == want:
            return False
        await self.init(workdir, on_line=on_line, secrets=secrets)
        _private_dir(stamp.parent)
        stamp.write_text(self._init_fingerprint(workdir))  # init may add .terraform
        return True

    async def validate(
        self,
        workdir: Path,
        *,
        on_line: LineCallback | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> list[Diagnostic]:
        """``validate -json``: check the configuration (after ``init``).

        Returns:
            The warnings (a valid configuration may still have some).

        Raises:
            TofuConfigInvalid: With every diagnostic, sorted by file and line.
        """
        mask = self._redactor(workdir, secrets)
        completed = await self._run(
            workdir,
            "validate",
            ["-json", "-no-color"],
            on_line=on_line,
            mask=mask,
            capture_stdout=True,
        )
        try:
            document = load_json(completed.stdout, what="validate -json")
        except TofuOutputError as exc:
            self._check(completed, "validate", workdir, mask)
            raise TofuCommandError(
                str(exc), command=completed.args, exit_code=completed.exit_code
            ) from exc
        diagnostics = parse_validate_json(document)
        masked = [_mask_diagnostic(d, mask) for d in diagnostics]
        if not document.get("valid", completed.exit_code == 0):
            raise self._config_invalid(completed, "validate", workdir, masked)
        return masked

    async def plan(
        self,
        workdir: Path,
        *,
        on_line: LineCallback | None = None,
        destroy: bool = False,
        secrets: Mapping[str, str] | None = None,
    ) -> PlanSummary:
        """``plan -out``: save a plan for ``apply`` and summarise it from ``show -json``.

        Args:
            workdir: The stack's work directory (``init`` done).
            on_line: Receives each output line as it is printed.
            destroy: Plan the destruction of everything instead.
            secrets: More values to mask, for this call only.

        Raises:
            TofuConfigInvalid: The configuration has errors.
            TofuPlanFailed: The plan could not be made or read back.
            TofuLockedError: Another run holds the stack or its state.
        """
        plan_path = self.plan_file(workdir)
        async with stack_lock(workdir, operation="plan", timeout=self.lock_timeout):
            _private_dir(plan_path.parent)
            # A failed plan must not leave an older one behind for apply to pick up.
            plan_path.unlink(missing_ok=True)
            args = ["-input=false", "-json", "-no-color", "-lock-timeout=0s", f"-out={plan_path}"]
            if destroy:
                args.append("-destroy")
            await self._checked(workdir, "plan", args, on_line, secrets)
            # Not masked and not streamed: the JSON plan holds every value, secrets included;
            # only counts and addresses are taken from it.
            mask = self._redactor(workdir, secrets)
            shown = await self._run(
                workdir,
                "show",
                ["-json", "-no-color", str(plan_path)],
                mask=mask,
                capture_stdout=True,
            )
            await self._raise_if_failed(shown, "show", workdir, mask)
            try:
                document = load_json(shown.stdout, what="show -json")
            except TofuOutputError as exc:
                raise TofuPlanFailed(str(exc), command=shown.args, exit_code=0) from exc
        return parse_plan_json(document, destroy_plan=destroy)

    async def apply(
        self,
        workdir: Path,
        *,
        on_line: LineCallback | None = None,
        secrets: Mapping[str, str] | None = None,
        read_outputs: bool = True,
    ) -> ApplyResult:
        """``apply``: carry out the saved plan (or, without one, a fresh plan) and read outputs.

        A saved plan is applied exactly (what was reviewed is what happens) and removed once
        applied. Without one, ``apply -auto-approve`` plans and applies in one go.

        Returns:
            Counts from the CLI's summary and the non-sensitive root outputs (none unless
            ``read_outputs``).

        Raises:
            TofuPlanStale: The saved plan predates a state change; plan again.
            TofuApplyFailed: The apply failed part-way; the state records what was done.
            TofuConfigInvalid: The configuration has errors (only without a saved plan).
            TofuLockedError: Another run holds the stack or its state.
        """
        plan_path = self.plan_file(workdir)
        async with stack_lock(workdir, operation="apply", timeout=self.lock_timeout):
            args = ["-input=false", "-json", "-no-color", "-lock-timeout=0s", "-auto-approve"]
            use_plan = plan_path.exists()
            if use_plan:
                args.append(str(plan_path))
            try:
                completed = await self._checked(workdir, "apply", args, on_line, secrets)
            except TofuPlanStale:
                plan_path.unlink(missing_ok=True)  # it can never apply again
                raise
            if use_plan:
                plan_path.unlink(missing_ok=True)
            counts = parse_change_summary(completed.events)
            # `output -json` is one more CLI start; callers that do not use outputs skip it.
            outputs, sensitive = (
                await self._outputs(workdir, secrets) if read_outputs else ({}, [])
            )
        return ApplyResult(
            added=counts.added,
            changed=counts.changed,
            destroyed=counts.destroyed,
            outputs=outputs,
            sensitive_outputs=sensitive,
        )

    async def destroy(
        self,
        workdir: Path,
        *,
        on_line: LineCallback | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> None:
        """``destroy -auto-approve``: remove everything the stack's state records.

        Raises:
            TofuDestroyFailed: Some resources could not be destroyed (they stay in state).
            TofuLockedError: Another run holds the stack or its state.
        """
        async with stack_lock(workdir, operation="destroy", timeout=self.lock_timeout):
            self.plan_file(workdir).unlink(missing_ok=True)  # stale once anything is destroyed
            args = ["-input=false", "-json", "-no-color", "-lock-timeout=0s", "-auto-approve"]
            await self._checked(workdir, "destroy", args, on_line, secrets)

    # -- plumbing -------------------------------------------------------------------------

    def _redactor(self, workdir: Path, secrets: Mapping[str, str] | None) -> Redactor:
        values = {**self._secrets, **(secrets or {})}
        values.update(discover_secrets(workdir, self._env))
        return Redactor(values.values())

    async def _run(
        self,
        workdir: Path,
        verb: str,
        args: Sequence[str],
        *,
        on_line: LineCallback | None = None,
        mask: Redactor | None = None,
        capture_stdout: bool = False,
    ) -> Completed:
        if not workdir.is_dir():
            raise TofuConfigInvalid(f"stack work directory {workdir} does not exist")
        command = [self.binary, verb, *args]
        try:
            return await run_cli(
                command,
                cwd=workdir,
                env=self.environment(),
                mask=mask or Redactor(),
                on_line=on_line,
                capture_stdout=capture_stdout,
                # Machine-readable output wherever the CLI offers it: counts and errors are
                # read from events, and users see each event's message, never raw JSON.
                json_events=_KEPT_EVENTS if "-json" in args and not capture_stdout else None,
                grace=self.kill_grace,
            )
        except (FileNotFoundError, PermissionError) as exc:
            raise TofuNotFound(f"cannot run `{self.binary}`: {exc.strerror}") from exc

    async def _checked(
        self,
        workdir: Path,
        verb: str,
        args: Sequence[str],
        on_line: LineCallback | None,
        secrets: Mapping[str, str] | None,
    ) -> Completed:
        mask = self._redactor(workdir, secrets)
        completed = await self._run(workdir, verb, args, on_line=on_line, mask=mask)
        await self._raise_if_failed(completed, verb, workdir, mask)
        return completed

    async def _raise_if_failed(
        self, completed: Completed, verb: str, workdir: Path, mask: Redactor
    ) -> None:
        if completed.exit_code == 0:
            return
        # The human-readable errors do not say whether the configuration is at fault; the
        # JSON validator does, with exact ranges. Only asked on this failure path.
        if verb != "show":
            config_errors = await self._config_errors(workdir, mask)
            if config_errors:
                raise self._config_invalid(completed, verb, workdir, config_errors)
        self._check(completed, verb, workdir, mask)

    async def _config_errors(self, workdir: Path, mask: Redactor) -> list[Diagnostic]:
        try:
            completed = await self._run(
                workdir, "validate", ["-json", "-no-color"], mask=mask, capture_stdout=True
            )
            diagnostics = parse_validate_json(load_json(completed.stdout, what="validate -json"))
        except (TofuOutputError, TofuNotFound):
            return []
        # Errors without a source range (a provider that is not installed) are not the
        # configuration's fault and may go away on retry.
        return [_mask_diagnostic(d, mask) for d in diagnostics if d.severity == "error" and d.file]

    def _check(self, completed: Completed, verb: str, workdir: Path, mask: Redactor) -> None:
        if completed.exit_code == 0:
            return
        # The JSON stream's diagnostics when the command had one; the human-readable blocks
        # on stderr only for what the CLI printed outside it.
        found = parse_diagnostic_events(completed.events) or parse_human_diagnostics(
            completed.stderr_tail
        )
        diagnostics = [_mask_diagnostic(d, mask) for d in found]
        summaries = {d.summary for d in diagnostics}
        text = "\n".join(completed.stderr_tail)
        error_type: type[TofuCommandError] = _FAILURES.get(verb, TofuCommandError)
        if STATE_LOCKED_MARKER in summaries or STATE_LOCKED_MARKER in text:
            error_type = TofuLockedError
        elif PLAN_STALE_MARKER in summaries or PLAN_STALE_MARKER in text:
            error_type = TofuPlanStale
        raise error_type(
            _message(completed, verb, workdir, diagnostics),
            command=completed.args,
            exit_code=completed.exit_code,
            stderr_tail=_tail(completed, diagnostics),
            diagnostics=diagnostics,
        )

    def _config_invalid(
        self,
        completed: Completed,
        verb: str,
        workdir: Path,
        diagnostics: list[Diagnostic],
    ) -> TofuConfigInvalid:
        return TofuConfigInvalid(
            _message(completed, verb, workdir, diagnostics, invalid=True),
            command=completed.args,
            exit_code=completed.exit_code,
            stderr_tail=_tail(completed, diagnostics),
            diagnostics=diagnostics,
        )

    async def _outputs(
        self, workdir: Path, secrets: Mapping[str, str] | None
    ) -> tuple[dict[str, object], list[str]]:
        mask = self._redactor(workdir, secrets)
        completed = await self._run(
            workdir, "output", ["-json", "-no-color"], mask=mask, capture_stdout=True
        )
        self._check(completed, "output", workdir, mask)
        try:
            document = load_json(completed.stdout or "{}", what="output -json")
        except TofuOutputError as exc:
            raise TofuApplyFailed(str(exc), command=completed.args, exit_code=0) from exc
        values, sensitive = parse_outputs_json(document)
        return mask.value(values), sensitive


def _private_dir(path: Path) -> None:
    # Saved plans contain variable values, secrets included.
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        path.chmod(0o700)


def _tail(completed: Completed, diagnostics: Sequence[Diagnostic]) -> str:
    """What went wrong, as lines: stderr, then the diagnostics (a ``-json`` run reports its
    errors in the stream, so its stderr is often empty). Both are masked already."""
    lines = [*completed.stderr_tail, *(str(d) for d in diagnostics)]
    return "\n".join(lines[-TAIL_LINES:])


def _mask_diagnostic(diagnostic: Diagnostic, mask: Redactor) -> Diagnostic:
    if not mask:
        return diagnostic
    return Diagnostic(
        severity=diagnostic.severity,
        summary=mask(diagnostic.summary),
        detail=mask(diagnostic.detail),
        file=diagnostic.file,
        line=diagnostic.line,
        column=diagnostic.column,
    )


def _message(
    completed: Completed,
    verb: str,
    workdir: Path,
    diagnostics: Sequence[Diagnostic],
    *,
    invalid: bool = False,
) -> str:
    name = Path(completed.args[0]).name if completed.args else "tofu"
    errors = [d for d in diagnostics if d.severity == "error"] or list(diagnostics)
    unreachable = _providers_unreachable(errors)
    if verb == "init" and unreachable:
        return (
            f"`{name} init` cannot download the provider(s) {', '.join(unreachable)}: their "
            "registry cannot be reached from this machine. Plan where it can, or put the "
            "providers into a filesystem mirror or the plugin cache (kombify's OpenTofu "
            "settings are in $KOMBIFY_HOME/tofu/cli.tfrc); `stackkit generate` and "
            "`stackkit validate` work offline"
        )
    if invalid:
        head = f"the configuration in {workdir} is invalid ({len(errors)} error(s))"
    else:
        head = f"`{name} {verb}` failed with exit code {completed.exit_code} in {workdir}"
    if errors:
        first = errors[0]
        where = f"{first.file}:{first.line}: " if first.file and first.line else ""
        return f"{head}: {where}{first.summary}"
    tail = next((line for line in reversed(completed.stderr_tail) if line.strip()), "")
    return f"{head}: {tail}" if tail else head


_PROVIDER_IN_DETAIL = re.compile(r"provider\s+([\w.-]+/[\w.-]+/?[\w.-]*)")
_UNREACHABLE = ("Failed to query available provider packages", "Failed to install provider")


def _providers_unreachable(errors: Sequence[Diagnostic]) -> list[str]:
    """Providers ``init`` could not fetch (no registry here), by name; empty for other errors."""
    found: list[str] = []
    for error in errors:
        if not error.summary.startswith(_UNREACHABLE):
            continue
        match = _PROVIDER_IN_DETAIL.search(error.detail.replace("\n", " "))
        name = match.group(1).rstrip(":") if match else "they need"
        if name not in found:
            found.append(name)
    return found
