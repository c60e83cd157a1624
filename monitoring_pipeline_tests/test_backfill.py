"""A backfill through the real daemon, launched as the UI launches one (the launchPartitionBackfill
mutation on hourly_monitoring) with the repo's dagster.yaml: the daemon puts up to a day of hours
in each run, every hour ends up in every table with its own check evaluations, and no run fails.
The 28-day version is `monitoring-pipeline bench-backfill --days 28`."""

from datetime import datetime, timedelta, timezone

import duckdb
import pytest

from monitoring_pipeline.tools.bench_backfill import prepare, run_backfill

pytestmark = pytest.mark.slow

TABLES = ("llm_requests", "hourly_metrics", "hourly_model_metrics", "review_sample")


def test_backfill_ranged_runs_through_the_daemon_fill_every_hour(tmp_path):
    first_day = (datetime.now(timezone.utc) - timedelta(days=4)).replace(hour=0, minute=0, second=0, microsecond=0)
    setup = prepare(tmp_path, first_day, days=2, volume=20)
    result = run_backfill(tmp_path, first_day, hours=30, env=setup["env"], timeout_s=600)
    assert result["runs"] == 2  # 24 hours + 6 hours, not 30 runs
    assert result["hours_per_run"] == 24
    assert result["failed_runs"] == []
    assert result["lock_errors"] == 0
    assert result["partitions_materialized"] == 30
    assert result["hours_evaluated"] == 30  # error_rate evaluated once per hour, each with its hour
    with duckdb.connect(str(tmp_path / "monitoring.duckdb"), read_only=True) as conn:
        for table in TABLES:
            assert conn.execute(f"SELECT count(DISTINCT hour) FROM {table}").fetchone() == (30,), table
