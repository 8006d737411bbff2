"""Which workflows and activities kombify's worker registers.

The names here are part of kombify's durable contract: a running workflow's history refers to
them, so ``tests/unit/test_registry.py`` pins them and renaming one must be a conscious change.
Each feature adds its workflows to ``WORKFLOWS`` and its activities in ``build_activities``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kombify.activities.selfcheck import probe_worker
from kombify.settings import Settings
from kombify.workflows.selfcheck import SelfCheckWorkflow

WORKFLOWS: Sequence[type] = (SelfCheckWorkflow,)


def build_activities(settings: Settings) -> list[Callable[..., Any]]:
    """Every activity callable, bound to the clients it needs (built from ``settings``)."""
    del settings  # later features construct their activity classes from it
    return [probe_worker]
