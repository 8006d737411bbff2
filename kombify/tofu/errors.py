"""Typed failures of the OpenTofu CLI, all under :class:`kombify.errors.TofuError`.

```
TofuError
├── TofuNotFound          (also a ConfigError: neither `tofu` nor `terraform` to run)
└── TofuCommandError      a command exited non-zero; carries command, exit code, stderr tail
    ├── TofuConfigInvalid the configuration is wrong (a user mistake: do not retry)
    ├── TofuLockedError   another run holds the stack (kombify's lock or the state lock)
    ├── TofuPlanStale     the saved plan no longer matches the state: plan again
    ├── TofuInitFailed
    ├── TofuPlanFailed
    ├── TofuApplyFailed
    └── TofuDestroyFailed
```
"""

from __future__ import annotations

from collections.abc import Sequence

from kombify.errors import ConfigError, TofuError
from kombify.tofu.models import Diagnostic


class TofuNotFound(TofuError, ConfigError):
    """Neither the configured binary, ``tofu`` nor ``terraform`` can be run."""

    code = "tofu-not-found"
    status = 500


class TofuCommandError(TofuError):
    """A CLI command failed.

    Attributes:
        command: The argument vector that ran (binary first).
        exit_code: The exit status, or ``None`` when nothing ran (e.g. a lock was busy).
        stderr_tail: The last lines of stderr, secrets already masked.
        diagnostics: The errors and warnings parsed from the output (``errors`` holds the
            errors among them in the shape every kombify error uses).
    """

    code = "tofu-command-failed"
    status = 502
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        command: Sequence[str] = (),
        exit_code: int | None = None,
        stderr_tail: str = "",
        diagnostics: Sequence[Diagnostic] = (),
    ) -> None:
        diagnostics = list(diagnostics)
        super().__init__(
            message,
            errors=[
                {"path": d.file or "", "line": d.line, "message": d.summary}
                for d in diagnostics
                if d.severity == "error"
            ],
        )
        self.command = tuple(command)
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail
        self.diagnostics = diagnostics


class TofuConfigInvalid(TofuCommandError):
    """The configuration in the work directory is invalid; ``diagnostics`` say where."""

    code = "tofu-config-invalid"
    status = 422
    retryable = False


class TofuLockedError(TofuCommandError):
    """Another apply/plan/destroy of the same stack is running."""

    code = "tofu-locked"
    status = 409


class TofuPlanStale(TofuCommandError):
    """The saved plan was made against an older state; make a new plan."""

    code = "tofu-plan-stale"
    status = 409
    retryable = False


class TofuInitFailed(TofuCommandError):
    """``init`` failed for a reason other than an invalid configuration."""

    code = "tofu-init-failed"


class TofuPlanFailed(TofuCommandError):
    """``plan`` (or reading the plan back) failed."""

    code = "tofu-plan-failed"


class TofuApplyFailed(TofuCommandError):
    """``apply`` failed; the state holds whatever was done before the failure."""

    code = "tofu-apply-failed"


class TofuDestroyFailed(TofuCommandError):
    """``destroy`` failed; some resources may remain."""

    code = "tofu-destroy-failed"
