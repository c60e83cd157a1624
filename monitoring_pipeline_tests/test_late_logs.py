"""late_logs_sensor: a file added to an hour already materialized re-runs that hour, once."""

import json
from datetime import timedelta

import dagster as dg

from monitoring_pipeline.definitions import defs
from monitoring_pipeline.defs.ingest.late_logs import late_logs_sensor
from monitoring_pipeline_tests.conftest import HOUR, PARTITION, record


def _tick(instance, resources, cursor):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources, definitions=defs)
    return late_logs_sensor.evaluate_tick(context)


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


def test_late_logs_unmaterialized_hour_is_left_to_the_schedule(logs, resources, instance, run_hour):
    logs.records([record(i) for i in range(10)])
    run_hour()
    baseline = _tick(instance, resources, None)
    later = HOUR + timedelta(hours=1)
    logs.records([record(i, later) for i in range(10)], later)
    tick = _tick(instance, resources, baseline.cursor)
    assert tick.run_requests == []
    assert "none of them already materialized" in tick.skip_message


def test_late_logs_first_tick_sets_a_baseline_without_runs(logs, resources, instance, run_hour):
    logs.records([record(i) for i in range(10)])
    run_hour()
    logs.records([record(i) for i in range(10, 12)], name="late.jsonl")
    tick = _tick(instance, resources, None)
    assert tick.run_requests == []
    assert "Baseline" in tick.skip_message
