"""A backfill through the real daemon, launched as the UI launches one (the launchPartitionBackfill
mutation on hourly_monitoring) with the repo's dagster.yaml: the daemon puts up to a day of hours
in each run, every hour ends up in every table and every hourly asset's partitions, each run
records its checks at its first and last hour, and no run fails.
The 28-day version is `monitoring-pipeline bench-backfill --days 28`."""

from datetime import datetime, timedelta, timezone

import duckdb
import pytest

from monitoring_pipeline.tools.bench_backfill import hours_in_tables, prepare, run_backfill

pytestmark = pytest.mark.slow


def test_backfill_ranged_runs_through_the_daemon_fill_every_hour(tmp_path):
    first_day = (datetime.now(timezone.utc) - timedelta(days=4)).replace(hour=0, minute=0, second=0, microsecond=0)
    setup = prepare(tmp_path, first_day, days=2, volume=20)
    result = run_backfill(tmp_path, first_day, hours=30, env=setup["env"], timeout_s=600)
    assert result["runs"] == 2  # 24 hours + 6 hours, not 30 runs
    assert result["hours_per_run"] == 24
    assert result["failed_runs"] == []
    assert result["lock_errors"] == 0
    assert result["partitions_materialized"] == 30
    hour = [f"{first_day + timedelta(hours=h):%Y-%m-%d-%H:00}" for h in (0, 23, 24, 29)]
    assert set(hour) <= result["evaluated_hours"]  # each run's first and last hour, with its hour
    with duckdb.connect(str(tmp_path / "monitoring.duckdb"), read_only=True) as conn:
        assert hours_in_tables(conn) == 30
