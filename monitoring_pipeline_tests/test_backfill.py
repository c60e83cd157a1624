"""A backfill through the real daemon, as a user launches it: `dagster job backfill` with the
repo's dagster.yaml (pool limit 1, several runs at once). Every hour ends up materialized, no run
fails, no lock error. The 168-hour version is `monitoring-pipeline bench-backfill`."""

from datetime import datetime, timedelta, timezone

import duckdb
import pytest

from monitoring_pipeline.tools.bench_backfill import prepare, run_backfill

pytestmark = pytest.mark.slow


def test_backfill_through_the_daemon_materializes_every_hour_without_lock_errors(tmp_path):
    first_day = (datetime.now(timezone.utc) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
    setup = prepare(tmp_path, first_day, days=1, volume=20)
    result = run_backfill(tmp_path, first_day, hours=4, env=setup["env"], timeout_s=240)
    assert result["runs"] == 4
    assert result["failed_runs"] == []
    assert result["lock_errors"] == 0
    assert result["partitions_materialized"] == 4
    with duckdb.connect(str(tmp_path / "monitoring.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT count(DISTINCT hour) FROM hourly_metrics").fetchone() == (4,)
