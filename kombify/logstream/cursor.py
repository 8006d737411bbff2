"""Which stored lines a live reader has sent, when ids may commit out of order.

Line ids come from the database's autoincrement, handed out when a writer inserts, but lines
become visible when the writer commits. With one writer (SQLite serialises writers; one
worker's :class:`~kombify.activities.event_log.EventLog` commits batch after batch) ids show
up in order. With several writer processes on PostgreSQL they need not: worker A inserts id
10, worker B inserts id 11 and commits first, a reader sees 11, then A commits 10. A reader
that only asked for ``id > last sent`` would skip 10 for good.

So the reader keeps a *floor* below which it never looks again, and above it re-reads rows it
may have sent already, dropping them by id. The floor only moves up to an id that was sent at
least :data:`SETTLE` seconds ago: a lower id still uncommitted then would have been held open
between its INSERT and COMMIT for longer than that, which the batch writer (insert and commit
in one go, milliseconds apart) does not do. The cost is re-reading a few seconds of lines per
wake-up, bounded by the page size.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

SETTLE = 5.0
"""Seconds after which a sent id is taken to have no lower id still uncommitted."""


class HasId(Protocol):
    """A stored line: anything with an integer id."""

    @property
    def id(self) -> int | None: ...  # the row id


Row = TypeVar("Row", bound=HasId)


@dataclass
class LineCursor:
    """What a reader has sent of one subject's lines.

    Args:
        floor: Every line with an id up to this one was sent (or is not wanted: a client's
            ``Last-Event-ID`` or ``after``).
        settle: See :data:`SETTLE`.
    """

    floor: int = 0
    settle: float = SETTLE
    _sent: dict[int, float] = field(default_factory=dict)  # id above the floor -> when sent

    @property
    def last(self) -> int:
        """The highest id sent so far (or the floor)."""
        return max(self._sent, default=self.floor)

    def fresh(self, rows: Iterable[Row], *, now: float) -> list[Row]:
        """The rows not sent before, in id order; they count as sent at ``now``."""
        new = sorted(
            (r for r in rows if r.id is not None and r.id > self.floor and r.id not in self._sent),
            key=lambda r: r.id or 0,
        )
        for row in new:
            assert row.id is not None
            self._sent[row.id] = now
        return new

    def settle_up(self, *, now: float) -> None:
        """Raise the floor past the ids sent at least ``settle`` seconds before ``now``."""
        settled = [i for i, at in self._sent.items() if now - at >= self.settle]
        if not settled:
            return
        self.floor = max(self.floor, *settled)
        self._sent = {i: at for i, at in self._sent.items() if i > self.floor}
