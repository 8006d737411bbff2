"""The live log reader's cursor when line ids commit out of order (kombify/logstream/cursor.py)."""

from __future__ import annotations

from dataclasses import dataclass

from kombify.logstream.cursor import LineCursor


@dataclass(frozen=True)
class Line:
    id: int


def visible(*ids: int) -> list[Line]:
    return [Line(i) for i in ids]


def ids(lines: list[Line]) -> list[int]:
    return [line.id for line in lines]


def test_a_lower_id_committed_after_a_higher_one_is_still_sent_once() -> None:
    cursor = LineCursor(floor=0, settle=5.0)
    # Writer B committed 11 and 12; writer A's 10 is inserted but not committed yet.
    assert ids(cursor.fresh(visible(11, 12), now=0.0)) == [11, 12]
    cursor.settle_up(now=0.1)
    assert cursor.floor == 0  # 11 and 12 are too recent to rule out a lower id in flight
    # A commits; the next read (from the floor, not from 12) finds 10, and 11/12 not again.
    assert ids(cursor.fresh(visible(10, 11, 12, 13), now=0.3)) == [10, 13]
    assert ids(cursor.fresh(visible(10, 11, 12, 13), now=0.4)) == []
    assert cursor.last == 13


def test_the_floor_rises_only_past_ids_sent_long_enough_ago() -> None:
    cursor = LineCursor(floor=3, settle=5.0)
    assert ids(cursor.fresh(visible(2, 3, 4, 5), now=0.0)) == [4, 5]  # at or below: not wanted
    cursor.fresh(visible(4, 5, 9), now=4.0)
    cursor.settle_up(now=5.0)
    assert cursor.floor == 5  # 4 and 5 settled; 9 was sent 1 s ago
    cursor.settle_up(now=9.0)
    assert cursor.floor == 9
    # A line below the floor is never sent: it stayed uncommitted past the settle time.
    assert ids(cursor.fresh(visible(7, 10), now=9.5)) == [10]


def test_a_resumed_cursor_starts_above_the_last_event_id() -> None:
    cursor = LineCursor(floor=42)
    assert ids(cursor.fresh(visible(40, 42, 43), now=0.0)) == [43]
    assert LineCursor(floor=42).last == 42
