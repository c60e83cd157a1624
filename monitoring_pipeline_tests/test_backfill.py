"""A backfill through the real daemon, launched as the UI launches one (the launchPartitionBackfill
mutation on hourly_monitoring) with the repo's dagster.yaml: the daemon puts up to a week of hours
in each run, every hour ends up in every table and every hourly asset's partitions, each run
records its checks at its first and last hour, and no run fails.
The 28-day version is `monitoring-pipeline bench-backfill --days 28`."""

from datetime import datetime, timedelta, timezone

import duckdb
import pytest

from monitoring_pipeline.lib import hourly
from monitoring_pipeline.tools.bench_backfill import hours_in_tables, prepare, run_backfill

pytestmark = pytest.mark.slow


def test_backfill_ranged_runs_through_the_daemon_fill_every_hour(tmp_path):
    first_day = (datetime.now(timezone.utc) - timedelta(days=4)).replace(hour=0, minute=0, second=0, microsecond=0)
    setup = prepare(tmp_path, first_day, days=1, volume=20)
    env = {**setup["env"], "MONITORING_BACKFILL_HOURS_PER_RUN": "4"}  # a week per run by default
    result = run_backfill(tmp_path, first_day, hours=6, env=env, timeout_s=600)
    assert result["runs"] == 2  # 4 hours + 2 hours, not 6 runs
    assert result["hours_per_run"] == 4
    assert result["failed_runs"] == []
    assert result["lock_errors"] == 0
    assert result["partitions_materialized"] == 6
    hour = [f"{first_day + timedelta(hours=h):%Y-%m-%d-%H:00}" for h in (0, 3, 4, 5)]
    assert set(hour) <= result["evaluated_hours"]  # each run's first and last hour, with its hour
    with duckdb.connect(str(tmp_path / "monitoring.duckdb"), read_only=True) as conn:
        assert hours_in_tables(conn, first_day, 6) == 6


def test_backfill_hours_per_run_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MONITORING_BACKFILL_HOURS_PER_RUN", "168")
    assert hourly._hours_per_run() == 168
    for bad in ("0", "-1", "1.5", "day"):
        monkeypatch.setenv("MONITORING_BACKFILL_HOURS_PER_RUN", bad)
        with pytest.raises(ValueError, match="MONITORING_BACKFILL_HOURS_PER_RUN"):
            hourly._hours_per_run()
