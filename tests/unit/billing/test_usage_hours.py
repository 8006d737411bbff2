"""Deploy minutes per hour: run time split at hour boundaries, each hour's total rounded up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kombify.billing.usage import (
    ApiCallCounter,
    Run,
    closed_before,
    hour_of,
    minutes_by_hour,
    month_start,
    split_by_hour,
    whole_minutes,
)

T0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
SINCE = T0 - timedelta(days=1)
UNTIL = T0 + timedelta(hours=6)


def at(hours: float = 0, minutes: float = 0, seconds: float = 0) -> datetime:
    return T0 + timedelta(hours=hours, minutes=minutes, seconds=seconds)


def test_a_run_inside_one_hour_counts_its_minutes_rounded_up() -> None:
    runs = [Run("org", at(minutes=5), at(minutes=17, seconds=1))]
    assert minutes_by_hour(runs, since=SINCE, until=UNTIL) == {("org", T0): 13}


def test_a_run_across_hours_is_split_at_each_boundary() -> None:
    runs = [Run("org", at(minutes=50), at(hours=2, minutes=10))]
    assert minutes_by_hour(runs, since=SINCE, until=UNTIL) == {
        ("org", at(0)): 10,
        ("org", at(1)): 60,
        ("org", at(2)): 10,
    }


def test_rounding_is_of_each_hours_total_not_of_each_run() -> None:
    # Three runs of 20 s each in one hour: one minute, not three.
    runs = [Run("org", at(minutes=m), at(minutes=m, seconds=20)) for m in (1, 2, 3)]
    assert minutes_by_hour(runs, since=SINCE, until=UNTIL) == {("org", T0): 1}
    spent = split_by_hour(runs, since=SINCE, until=UNTIL)
    assert spent == {("org", T0): timedelta(seconds=60)}


def test_exactly_on_the_boundary_the_next_hour_gets_nothing() -> None:
    runs = [Run("org", at(minutes=30), at(hours=1))]
    assert minutes_by_hour(runs, since=SINCE, until=UNTIL) == {("org", T0): 30}


def test_organisations_are_kept_apart_and_overlapping_runs_each_count() -> None:
    runs = [
        Run("a", at(minutes=0), at(minutes=30)),
        Run("a", at(minutes=10), at(minutes=40)),
        Run("b", at(minutes=0), at(minutes=1, seconds=30)),
    ]
    assert minutes_by_hour(runs, since=SINCE, until=UNTIL) == {("a", T0): 60, ("b", T0): 2}


def test_a_run_still_going_counts_up_to_until_and_nothing_outside_the_window() -> None:
    runs = [Run("org", at(hours=-30), None)]
    got = minutes_by_hour(runs, since=at(-2), until=at(1, minutes=15))
    assert got == {("org", at(-2)): 60, ("org", at(-1)): 60, ("org", at(0)): 60, ("org", at(1)): 15}


def test_a_run_of_no_time_counts_nothing() -> None:
    runs = [Run("org", at(minutes=5), at(minutes=5)), Run("org", at(minutes=9), at(minutes=8))]
    assert minutes_by_hour(runs, since=SINCE, until=UNTIL) == {}


def test_whole_minutes_rounds_up_any_started_minute() -> None:
    assert [whole_minutes(timedelta(seconds=s)) for s in (0, 0.001, 59.999, 60, 60.5)] == [
        0,
        1,
        1,
        1,
        2,
    ]


def test_hours_are_utc_and_named_by_their_start() -> None:
    local = datetime(2026, 12, 3, 12, 34, 56, 789, tzinfo=UTC).astimezone(
        datetime.now().astimezone().tzinfo
    )
    assert hour_of(local) == datetime(2026, 12, 3, 12, tzinfo=UTC)
    assert hour_of(datetime(2026, 12, 3, 12, 34)) == datetime(2026, 12, 3, 12, tzinfo=UTC)
    assert month_start(at(5, 59)) == datetime(2026, 12, 1, tzinfo=UTC)


def test_an_hour_is_closed_only_once_it_has_settled() -> None:
    assert closed_before(at(1, minutes=9, seconds=59)) == at(0)  # 10:00 still settling
    assert closed_before(at(1, minutes=10)) == at(1)  # 10:00 may be reported now


def test_the_counter_counts_per_organisation_and_hour_and_can_take_back() -> None:
    counter = ApiCallCounter()
    counter.add("a", at=at(minutes=1))
    counter.add("a", at=at(minutes=59))
    counter.add("a", at=at(1))
    counter.add("b", at=at(minutes=3), calls=5)
    assert counter.pending("a") == 3
    taken = counter.take()
    assert taken == {("a", at(0)): 2, ("a", at(1)): 1, ("b", at(0)): 5}
    assert counter.pending("a") == 0 and counter.take() == {}
    counter.give_back(taken)
    counter.add("b", at=at(minutes=4))
    assert counter.take() == {("a", at(0)): 2, ("a", at(1)): 1, ("b", at(0)): 6}
