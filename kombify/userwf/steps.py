"""What crosses between ``RunUserWorkflow`` and its step activities (durable names and shapes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# One activity per kind of action, so the Temporal UI names what a step does. Durable names.
ACTIVITY_OF_KIND = {
    "run": "UserStepRun",
    "http": "UserStepHttp",
    "webhook": "UserStepWebhook",
    "notify": "UserStepNotify",
    "deploy": "UserStepStackRun",
    "destroy": "UserStepStackRun",
    "rollback": "UserStepStackRun",
    "restart": "UserStepRestart",
}
FAILED_TYPE = "UserStepFailed"
"""``ApplicationError.type`` of a step that did not pass (its details: a :class:`StepReport`)."""
MAX_LOG_LINES = 40
MAX_LINE = 300
MAX_OUTPUT = 16 * 1024


@dataclass(frozen=True)
class StepInput:
    """One attempt of one step: the action with every ``${{ }}`` filled in except secrets."""

    organisation: str
    workflow_id: str
    step: str
    kind: str
    action: dict[str, Any]


@dataclass
class StepReport:
    """What a step attempt did: its outputs and log lines (bounded), and which attempt it was."""

    outputs: dict[str, Any] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    attempt: int = 1

    def say(self, line: str) -> None:
        """Add a log line (cut to :data:`MAX_LINE`; the last :data:`MAX_LOG_LINES` kept)."""
        for part in line.splitlines() or [""]:
            self.log.append(part if len(part) <= MAX_LINE else part[: MAX_LINE - 3] + "...")
        del self.log[:-MAX_LOG_LINES]


def bounded(text: str, limit: int = MAX_OUTPUT) -> str:
    """``text`` cut to ``limit`` characters (outputs live in the workflow's history)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
