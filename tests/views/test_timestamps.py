"""One timestamp format leaves the server: ISO 8601 UTC, milliseconds, ``Z``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, UTC

from server.clock import isoformat
from server.views import epoch_view, plain_view, timestamp_view

STORED = datetime(2026, 1, 2, 3, 4, 5, 123456)  # what a driver hands back: naive UTC


def test_every_datetime_renders_to_the_millisecond_with_z():
    assert timestamp_view(STORED) == "2026-01-02T03:04:05.123Z"
    assert timestamp_view(STORED.replace(tzinfo=UTC)) == "2026-01-02T03:04:05.123Z"
    two_hours_east = timezone(timedelta(hours=2))
    local = datetime(2026, 1, 2, 5, 4, 5, 123456, tzinfo=two_hours_east)
    assert timestamp_view(local) == "2026-01-02T03:04:05.123Z"
    assert timestamp_view(STORED.replace(microsecond=0)) == "2026-01-02T03:04:05.000Z"
    assert timestamp_view(None) is None


def test_unix_times_and_whole_documents_render_the_same_way():
    at = STORED.replace(tzinfo=UTC)
    assert epoch_view(at.timestamp()) == "2026-01-02T03:04:05.123Z"
    assert plain_view({"a": [STORED, {"b": STORED}], "c": 1, "d": "text"}) == {
        "a": ["2026-01-02T03:04:05.123Z", {"b": "2026-01-02T03:04:05.123Z"}], "c": 1,
        "d": "text"}


def test_the_same_text_as_isoformat_for_any_time_and_zone():
    zones = [None, UTC, timezone(timedelta(hours=-7)), timezone(timedelta(minutes=330))]
    start = datetime(1999, 12, 31, 23, 59, 59, 999999)
    for step in range(0, 400 * 86400, 86400 * 7 + 3607):
        for zone in zones:
            value = (start + timedelta(seconds=step, microseconds=step % 999983)).replace(
                tzinfo=zone)
            assert timestamp_view(value) == isoformat(value), value
