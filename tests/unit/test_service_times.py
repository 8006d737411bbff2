"""The times container logs are asked and answered with: Docker's, RFC 3339, and `since`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kombify.agent.times import parse_time
from kombify.api.routes.services import InvalidParameterError, parse_since
from kombify.operate.services import _utc


def test_docker_nanoseconds_and_offsets_are_read() -> None:
    assert parse_time("2026-12-02T22:20:38.140123456Z") == pytest.approx(
        datetime(2026, 12, 2, 22, 20, 38, 140123, tzinfo=UTC).timestamp()
    )
    assert parse_time("2026-12-03T00:20:38+02:00") == parse_time("2026-12-02T22:20:38Z")
    with pytest.raises(ValueError):
        parse_time("2026-12-02T22:20:38")  # no zone: which time would that be?


def test_log_times_are_shown_in_utc_with_milliseconds() -> None:
    assert _utc("2026-12-02T22:20:38.140123456Z") == "2026-12-02T22:20:38.140Z"


def test_since_is_a_duration_before_now_or_a_time() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)

    assert parse_since("10m", now=now) == datetime(2026, 12, 2, 11, 50, tzinfo=UTC)
    assert parse_since("2026-12-02T11:00:00Z", now=now) == datetime(2026, 12, 2, 11, tzinfo=UTC)
    assert parse_since(None) is None
    with pytest.raises(InvalidParameterError, match="since: expected a duration"):
        parse_since("yesterday", now=now)
