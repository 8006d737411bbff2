"""The OpenTofu/Terraform CLI wrapper: binary lookup, runner, parsing, locking, redaction.

The Temporal activities built on it live in :mod:`kombify.activities.tofu`, which also
re-exports this public API.
"""

from __future__ import annotations

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
from kombify.tofu.models import ApplyResult, Diagnostic, PlanSummary, ResourceChange
from kombify.tofu.redact import Redactor
from kombify.tofu.runner import TofuRunner

__all__ = [
    "ApplyResult",
    "Diagnostic",
    "PlanSummary",
    "Redactor",
    "ResourceChange",
    "TofuApplyFailed",
    "TofuCommandError",
    "TofuConfigInvalid",
    "TofuDestroyFailed",
    "TofuInitFailed",
    "TofuLockedError",
    "TofuNotFound",
    "TofuPlanFailed",
    "TofuPlanStale",
    "TofuRunner",
    "find_tofu_binary",
]
