"""After `make demo`, `make dev` shows the demo's day only, and nothing runs or pages about other hours."""

from datetime import datetime, timedelta, timezone

import dagster as dg
from dagster._core.secrets.env_file import get_env_var_dict  # what `dagster dev` loads from its cwd

from monitoring_pipeline.definitions import defs
from monitoring_pipeline.defs import jobs
from monitoring_pipeline.defs.ingest import missing_logs
from monitoring_pipeline.lib.partitions import build_hourly_partitions
from monitoring_pipeline.resources import Clock
from monitoring_pipeline.tools.demo import write_demo_env
from monitoring_pipeline_tests.conftest import record

DAY = datetime(2026, 3, 1, tzinfo=timezone.utc)


def _demo_partitions(tmp_path, monkeypatch) -> dg.HourlyPartitionsDefinition:
    """The partitions `dagster dev` builds in the demo's folder: its .env applied, as dagster dev does."""
    write_demo_env(tmp_path / ".env", DAY)
    for name, value in get_env_var_dict(str(tmp_path)).items():
        monkeypatch.setenv(name, value)
    return build_hourly_partitions()


def test_demo_env_sets_the_demo_day_and_keeps_other_lines(tmp_path):
    env = tmp_path / ".env"
    env.write_text("FOO=bar\nMONITORING_PARTITIONS_START=2020-01-01\n")
    write_demo_env(env, DAY)
    write_demo_env(env, DAY)  # a second demo run does not pile up lines
    assert get_env_var_dict(str(tmp_path)) == {
        "FOO": "bar",
        "MONITORING_PARTITIONS_START": "2026-03-01",
        "MONITORING_PARTITIONS_END": "2026-03-02",
    }
    assert env.read_text().count("MONITORING_PARTITIONS_START") == 1


def test_demo_partitions_are_the_demo_day(tmp_path, monkeypatch):
    partitions = _demo_partitions(tmp_path, monkeypatch)
    keys = partitions.get_partition_keys(current_time=DAY + timedelta(days=30))
    assert keys[0] == "2026-03-01-00:00" and keys[-1] == "2026-03-01-23:00" and len(keys) == 24


def test_missing_logs_sensor_quiet_over_hours_past_the_demo_day(tmp_path, monkeypatch, logs, resources, instance):
    for h in range(24):
        logs.records([record(0, DAY + timedelta(hours=h))], DAY + timedelta(hours=h))
    context = dg.build_sensor_context(
        instance=instance, resources={**resources, "clock": Clock(fixed=(DAY + timedelta(days=1, hours=9)).isoformat())}
    )
    # Without an end (no demo .env): the morning after, every hour since midnight has no logs.
    assert not missing_logs_sensor_quiet(context)
    monkeypatch.setattr(missing_logs, "hourly_partitions", _demo_partitions(tmp_path, monkeypatch))
    assert missing_logs_sensor_quiet(context)


def missing_logs_sensor_quiet(context) -> bool:
    message = missing_logs.missing_logs_sensor.evaluate_tick(context).skip_message
    return message.startswith("0 hour(s) without logs")


def test_hourly_monitoring_schedule_rests_past_the_demo_day(tmp_path, monkeypatch, instance):
    monkeypatch.setattr(jobs, "hourly_partitions", _demo_partitions(tmp_path, monkeypatch))

    def tick(at: datetime):
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=at, repository_def=defs.get_repository_def()
        )
        return jobs.hourly_monitoring_schedule.evaluate_tick(context)

    assert [r.partition_key for r in tick(DAY + timedelta(hours=12, minutes=10)).run_requests] == ["2026-03-01-11:00"]
    assert [r.partition_key for r in tick(DAY + timedelta(days=1, minutes=10)).run_requests] == ["2026-03-01-23:00"]
    for later in (timedelta(days=1, hours=1, minutes=10), timedelta(days=5, hours=7, minutes=10)):
        result = tick(DAY + later)
        assert not result.run_requests and "not a partition" in result.skip_message
    assert not tick(DAY - timedelta(hours=2)).run_requests  # before the start too
