"""What ``--cron``, ``--every`` and ``--jitter`` accept, and the field a refusal names."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kombify.errors import SpecError
from kombify.operate.schedules import check_cron, format_duration, parse_duration


@pytest.mark.parametrize(
    "cron",
    ["0 3 * * *", "*/15 * * * *", "0 9-17/2 * * MON-FRI", "30 4 1,15 JAN,jul 0", "0 0 * * 7"],
)
def test_five_field_crons_are_accepted(cron: str) -> None:
    assert check_cron(f"  {cron} ") == cron


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("@daily", "has 1 fields: expected 5"),
        ("0 0 3 * * *", "has 6 fields: expected 5"),
        ("60 * * * *", "`60` is not a valid minute"),
        ("0 3 0 * *", "`0` is not a valid day of month"),
        ("0 3 * 13 *", "`13` is not a valid month"),
        ("0 3 * * FUN", "`FUN` is not a valid day of week"),
        ("*/0 * * * *", "`*/0` is not a valid minute"),
        ("1-x * * * *", "`1-x` is not a valid minute"),
    ],
)
def test_a_bad_cron_is_refused_naming_the_field(cron: str, words: str) -> None:
    with pytest.raises(SpecError) as refused:
        check_cron(cron)

    assert refused.value.errors == [{"path": "cron", "message": refused.value.message[6:]}]
    assert words in refused.value.message


@pytest.mark.parametrize(
    ("text", "seconds", "shown"),
    [("30s", 30, "30s"), ("5m", 300, "5m"), ("360m", 21600, "6h"), ("1d", 86400, "1d"),
     ("90s", 90, "90s")],
)  # fmt: skip
def test_durations(text: str, seconds: int, shown: str) -> None:
    assert parse_duration(text, field="every") == timedelta(seconds=seconds)
    assert format_duration(timedelta(seconds=seconds)) == shown


@pytest.mark.parametrize("text", ["0s", "6 hours", "1w", "-5m", "1.5h", "", "m"])
def test_a_bad_duration_names_its_field(text: str) -> None:
    with pytest.raises(SpecError, match=r"^jitter: .* is not a duration"):
        parse_duration(text, field="jitter")
