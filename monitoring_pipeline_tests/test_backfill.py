"""A backfill through the real daemon, launched as the UI launches one (the launchPartitionBackfill
mutation on hourly_monitoring) with the repo's dagster.yaml: the daemon puts up to a week of hours
in each run, every hour ends up in every table and every hourly asset's partitions, each run
records its checks at its first and last hour, no run fails, and the alerts say one thing: that
the backfill is done.
The 28-day version is `monitoring-pipeline bench-backfill --days 28`."""

import json
from datetime import datetime, timedelta, timezone

import dagster as dg
import duckdb
import pytest

from monitoring_pipeline.definitions import defs
from monitoring_pipeline.defs.alerts.sensors import slack_alert_sensor
from monitoring_pipeline.lib import hourly
from monitoring_pipeline.tools.bench_backfill import hours_in_tables, prepare, run_backfill

pytestmark = pytest.mark.slow


def test_backfill_ranged_runs_through_the_daemon_fill_every_hour_and_post_one_summary(tmp_path, monkeypatch):
    """One daemon run for two behaviours, each costing a minute or more of dagster-daemon: the
    backfill's ranged runs fill every hour, and slack_alert_sensor, ticking while they finish,
    posts one summary counting every hour and no check alert (the hours are days old)."""
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

    for name, value in env.items():
        if name.startswith("MONITORING_") or name == "DAGSTER_HOME":
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(setup["home"])  # its dagster.yaml has paths relative to it
    with dg.DagsterInstance.get() as instance:  # a last tick, in case the daemon stopped before its own
        slack_alert_sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources=defs.resources))
    alerts = [json.loads(line)["text"] for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    summaries = [text for text in alerts if text.startswith("Backfill ")]
    assert len(summaries) == 1 and " of 6 hour(s) done: " in summaries[0], alerts
    assert not [text for text in alerts if text.startswith(("Monitoring", "<!here>"))], alerts


def test_backfill_hours_per_run_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MONITORING_BACKFILL_HOURS_PER_RUN", "168")
    assert hourly._hours_per_run() == 168
    for bad in ("0", "-1", "1.5", "day"):
        monkeypatch.setenv("MONITORING_BACKFILL_HOURS_PER_RUN", bad)
        with pytest.raises(ValueError, match="MONITORING_BACKFILL_HOURS_PER_RUN"):
            hourly._hours_per_run()
