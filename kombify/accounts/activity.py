"""The activity log: every change, who made it and from where."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from kombify.db.account_tables import Activity


def record(db: Session, entry: Activity) -> None:
    """Store one entry (committed)."""
    db.add(entry)
    db.commit()


def query(
    db: Session,
    *,
    org_id: str | None = None,
    user_id: str | None = None,
    before: datetime | None = None,
    limit: int = 50,
) -> list[Activity]:
    """Entries of an organisation and/or a user, newest first."""
    q = select(Activity)
    if org_id is not None:
        q = q.where(Activity.organisation_id == org_id)
    if user_id is not None:
        q = q.where(Activity.user_id == user_id)
    if before is not None:
        q = q.where(Activity.created_at < before)
    return list(db.exec(q.order_by(col(Activity.id).desc()).limit(limit)).all())
