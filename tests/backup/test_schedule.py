"""The scheduled backups' timing and pruning, with a frozen clock: the
schedule continues from the newest archive across restarts, and pruning
deletes only this schedule's oldest archives."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, UTC
from pathlib import Path

from prometheus_client import CollectorRegistry

from server.backup.schedule import BackupMetrics, BackupScheduler, archive_name
from server.clock import FrozenClock

INTERVAL_S = 3600.0
KEEP = 2


def _scheduler(directory: Path, clock: FrozenClock) -> BackupScheduler:
    return BackupScheduler(db=None, directory=directory, interval=INTERVAL_S,  # type: ignore[arg-type]
                           keep=KEEP, key=None, source="test", clock=clock,
                           metrics=BackupMetrics(CollectorRegistry()))


def _archive(directory: Path, clock: FrozenClock, age_s: float) -> Path:
    at = clock.now() - timedelta(seconds=age_s)
    path = directory / archive_name(at)
    path.write_bytes(b"archive")
    os.utime(path, (at.timestamp(), at.timestamp()))
    return path


def test_the_schedule_continues_from_the_newest_archive(tmp_path):
    clock = FrozenClock(datetime(2026, 11, 30, 12, tzinfo=UTC).timestamp())
    scheduler = _scheduler(tmp_path, clock)
    assert scheduler.first_delay() == 0.0  # nothing yet: back up now
    _archive(tmp_path, clock, age_s=5000)
    assert scheduler.first_delay() == 0.0  # overdue
    _archive(tmp_path, clock, age_s=100)
    assert scheduler.first_delay() == INTERVAL_S - 100
    assert _scheduler(tmp_path / "missing", clock).first_delay() == 0.0


def test_pruning_keeps_the_newest_and_touches_nothing_else(tmp_path):
    clock = FrozenClock(datetime(2026, 11, 30, 12, tzinfo=UTC).timestamp())
    made = [_archive(tmp_path, clock, age_s=age) for age in (500, 400, 300, 200, 100)]
    other = tmp_path / "notes.txt"
    other.write_text("mine")
    in_progress = tmp_path / f".{archive_name(clock.now())}.abcd.tmp"
    in_progress.write_bytes(b"partial")
    deleted = _scheduler(tmp_path, clock).prune()
    assert deleted == made[:-KEEP]
    assert sorted(p for p in tmp_path.iterdir()) == sorted([*made[-KEEP:], other, in_progress])
