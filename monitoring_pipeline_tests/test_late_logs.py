"""late_logs_sensor: a file added to an hour already materialized re-runs that hour, once."""

import json
from datetime import timedelta

import dagster as dg
import pytest

from monitoring_pipeline.definitions import defs
from monitoring_pipeline.defs.ingest.assets import llm_requests
from monitoring_pipeline.defs.ingest.late_logs import late_logs_sensor, recorded_fingerprints
from monitoring_pipeline.resources import LogSource
from monitoring_pipeline_tests.conftest import HOUR, PARTITION, record

DURING_RUN: list = []  # callbacks a run calls right after it listed the hour's files


class LogSourceDuringRun(LogSource):
    def list_hour(self, hour):
        listing = super().list_hour(hour)
        for callback in DURING_RUN:
            callback()
        return listing


def _tick(instance, resources, cursor):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources, definitions=defs)
    return late_logs_sensor.evaluate_tick(context)


@pytest.mark.slow
def test_late_logs_file_added_to_materialized_hour_requests_one_run(logs, resources, instance, run_hour):
    logs.records([record(i) for i in range(10)])
    run_hour()
    baseline = _tick(instance, resources, None)
    assert baseline.run_requests == [] and PARTITION in json.loads(baseline.cursor)

    logs.records([record(i) for i in range(10, 15)], name="late-writer.jsonl")
    tick = _tick(instance, resources, baseline.cursor)
    assert [r.partition_key for r in tick.run_requests] == [PARTITION]
    assert late_logs_sensor.job_name == "hourly_monitoring"
    run_key = tick.run_requests[0].run_key

    again = _tick(instance, resources, tick.cursor)
    assert again.run_requests == []

    # The re-run picks the late lines up.
    assert run_hour().success
    mat = instance.get_latest_materialization_event(dg.AssetKey("llm_requests"))
    assert mat.asset_materialization.metadata["rows_ingested"].value == 15

    # A later change to the same hour is a new change: a new run key.
    logs.records([record(i) for i in range(15, 16)], name="later.jsonl")
    third = _tick(instance, resources, again.cursor)
    assert [r.partition_key for r in third.run_requests] == [PARTITION]
    assert third.run_requests[0].run_key != run_key


@pytest.mark.slow
def test_late_logs_unmaterialized_hour_is_left_to_the_schedule(logs, resources, instance, run_hour):
    logs.records([record(i) for i in range(10)])
    run_hour()
    baseline = _tick(instance, resources, None)
    later = HOUR + timedelta(hours=1)
    logs.records([record(i, later) for i in range(10)], later)
    tick = _tick(instance, resources, baseline.cursor)
    assert tick.run_requests == []
    assert "none differs from what its last run read" in tick.skip_message


@pytest.mark.slow
def test_late_logs_first_tick_sets_a_baseline_without_runs(logs, resources, instance, run_hour):
    logs.records([record(i) for i in range(10)])
    run_hour()
    logs.records([record(i) for i in range(10, 12)], name="late.jsonl")
    tick = _tick(instance, resources, None)
    assert tick.run_requests == []
    assert "Baseline" in tick.skip_message


@pytest.mark.slow
def test_late_logs_file_landing_during_the_first_run_requests_a_rerun(logs, resources, instance, run_hour):
    cursor = _tick(instance, resources, None).cursor
    logs.records([record(i) for i in range(10)])
    ticks = []

    def file_lands_and_sensor_ticks():
        logs.records([record(i) for i in range(10, 15)], name="late-writer.jsonl")
        ticks.append(_tick(instance, resources, cursor))

    DURING_RUN.append(file_lands_and_sensor_ticks)
    try:
        dg.materialize(
            [llm_requests],
            partition_key=PARTITION,
            resources={**resources, "logs": LogSourceDuringRun(log_dir=str(logs.root))},
            instance=instance,
        )
    finally:
        DURING_RUN.clear()
    (during,) = ticks
    assert during.run_requests == []  # not materialized yet: the schedule's run is under way
    mat = instance.get_latest_materialization_event(dg.AssetKey("llm_requests")).asset_materialization
    assert mat.metadata["rows_ingested"].value == 10 and mat.metadata["log_files"].value == ["app.jsonl"]

    after = _tick(instance, resources, during.cursor)
    assert [r.partition_key for r in after.run_requests] == [PARTITION]
    assert after.run_requests[0].run_key.endswith(json.loads(after.cursor)[PARTITION])

    assert run_hour().success  # the re-run reads the late file, and the folder matches what it read
    mat = instance.get_latest_materialization_event(dg.AssetKey("llm_requests")).asset_materialization
    assert mat.metadata["rows_ingested"].value == 15
    assert _tick(instance, resources, after.cursor).run_requests == []


@pytest.mark.slow
def test_late_logs_change_already_read_by_a_run_requests_nothing(logs, resources, instance, run_hour):
    logs.records([record(i) for i in range(10)])
    run_hour()
    baseline = _tick(instance, resources, None)
    logs.records([record(i) for i in range(10, 15)], name="late-writer.jsonl")
    assert run_hour().success  # a backfill got there before the sensor
    tick = _tick(instance, resources, baseline.cursor)
    assert tick.run_requests == []
    assert json.loads(tick.cursor)[PARTITION] != json.loads(baseline.cursor)[PARTITION]


def test_late_logs_recorded_fingerprints_are_each_hours_latest_in_a_few_queries(instance):
    """After a backfill a tick looks up hundreds of hours at once: each gets its latest
    materialization's fingerprint, across the lookup's pages of 100 hours."""
    keys = [(HOUR + timedelta(hours=i)).strftime("%Y-%m-%d-%H:%M") for i in range(150)]
    for i, key in enumerate(keys):
        metadata = {} if i == 7 else {"log_fingerprint": f"first-{i}"}  # hour 7: recorded before fingerprints
        instance.report_runless_asset_event(dg.AssetMaterialization("llm_requests", partition=key, metadata=metadata))
    for i in (0, 120):  # re-runs: the latest counts
        instance.report_runless_asset_event(
            dg.AssetMaterialization("llm_requests", partition=keys[i], metadata={"log_fingerprint": f"again-{i}"})
        )
    found = recorded_fingerprints(instance, [*keys, "2026-01-01-00:00"])  # and an hour never materialized
    assert found == {
        key: None if i == 7 else (f"again-{i}" if i in (0, 120) else f"first-{i}") for i, key in enumerate(keys)
    }
