"""The dataclasses that cross the boundary of the ``ReportUsage`` workflow.

Ids, times (RFC 3339) and counts only: no Stripe key or customer detail enters a history.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SCHEDULE_ID = "kombify-usage-report"
WORKFLOW_ID = "billing/report-usage"


@dataclass(frozen=True)
class ReportUsageInput:
    """A report of every closed hour not reported yet.

    Attributes:
        until: Report the hours that start before this (RFC 3339, an hour's start); empty:
            the workflow takes the last closed and settled hour from its clock.
        pending: Organisations still to report (set when the run continued as new).
    """

    until: str = ""
    pending: list[str] | None = None


@dataclass
class ReportUsageResult:
    """What one report did, over every organisation."""

    until: str = ""
    measured: int = 0
    organisations: int = 0
    sent: int = 0
    already_reported: int = 0
    # Organisation id → why its report failed (it is tried again in the next run).
    failed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UsageWindow:
    """Hours that start before ``until`` (RFC 3339)."""

    until: str


@dataclass(frozen=True)
class OrgUsageInput:
    """One organisation's unreported hours before ``until`` (RFC 3339)."""

    organisation_id: str
    until: str


@dataclass(frozen=True)
class OrgUsageResult:
    """Events Stripe accepted, and events it already had (a resend after a crash)."""

    sent: int = 0
    already_reported: int = 0
