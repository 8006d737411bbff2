"""Which organisation owns which schedule (the schedule itself lives in Temporal).

The row is what the API checks before it asks Temporal anything: another organisation's
schedule is answered like a missing one, and a name is taken once per organisation.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from kombify.db.models import _ts, new_id


class ScheduleRow(SQLModel, table=True):
    """One owner's schedule of a workflow file; ``schedule_id`` names it in Temporal."""

    __tablename__ = "schedule"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    organisation_id: str = Field(foreign_key="organisation.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=63)
    schedule_id: str = Field(max_length=255, unique=True)
    filename: str = Field(max_length=255)
    created_by: str = Field(default="", max_length=320)
    created_at: datetime = _ts(nullable=False)
