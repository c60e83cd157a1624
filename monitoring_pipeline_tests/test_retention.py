"""storage_retention: old text gone, recent text kept, metrics and review sample unchanged,
old quarantine pruned, the file compacted."""

import json
from datetime import timedelta

import dagster as dg

from monitoring_pipeline.defs.maintenance.retention import storage_retention
from monitoring_pipeline.lib.partitions import partition_key
from monitoring_pipeline_tests.conftest import HOUR, record

AS_OF = HOUR + timedelta(days=10)
RECENT = AS_OF - timedelta(hours=2)


def _retain(resources, instance):
    return dg.materialize(
        [storage_retention],
        resources=resources,
        instance=instance,
        run_config={"ops": {"storage_retention": {"config": {"as_of": AS_OF.isoformat()}}}},
    )


def test_retention_drops_old_text_prunes_quarantine_keeps_metrics(
    logs, config_file, resources, instance, run_hour, query, tmp_path
):
    config_file({"retention": {"text_days": 7, "quarantine_days": 9}})
    for hour in (HOUR, RECENT):
        big = [
            record(
                i,
                hour,
                prompt="p" * 2000 + str(i),
                response="r" * 2000 + str(i),
                status="error" if i % 10 == 0 else "ok",
            )
            for i in range(300)
        ]
        logs.lines([*(json.dumps(r) for r in big), "not json"], hour)
        run_hour(partition_key(hour))
    metrics = query("SELECT * FROM hourly_metrics ORDER BY hour")
    model_metrics = query("SELECT * FROM hourly_model_metrics ORDER BY hour, model")
    sample = query("SELECT * FROM review_sample ORDER BY hour, request_id")
    assert len(query("SELECT * FROM quarantine")) == 2
    size_before = (tmp_path / "monitoring.duckdb").stat().st_size

    result = _retain(resources, instance)

    old, recent = HOUR.replace(tzinfo=None), RECENT.replace(tzinfo=None)
    assert query(
        "SELECT hour, count(prompt), count(response), count(*) FROM llm_requests GROUP BY hour ORDER BY hour"
    ) == [(old, 0, 0, 300), (recent, 300, 300, 300)]
    assert query("SELECT hour FROM quarantine") == [(recent,)]
    assert query("SELECT * FROM hourly_metrics ORDER BY hour") == metrics
    assert query("SELECT * FROM hourly_model_metrics ORDER BY hour, model") == model_metrics
    assert query("SELECT * FROM review_sample ORDER BY hour, request_id") == sample
    assert all(p is not None for (p,) in query("SELECT prompt FROM review_sample WHERE hour = $h", {"h": old}))
    meta = result.asset_materializations_for_node("storage_retention")[0].metadata
    assert meta["texts_dropped"].value == 300 and meta["quarantine_pruned"].value == 1
    assert meta["file_bytes_after"].value == (tmp_path / "monitoring.duckdb").stat().st_size < size_before

    # Idempotent, and the hourly runs keep working on the compacted file.
    assert (
        _retain(resources, instance)
        .asset_materializations_for_node("storage_retention")[0]
        .metadata["texts_dropped"]
        .value
        == 0
    )
    assert run_hour(partition_key(RECENT)).success


def test_retention_on_an_empty_warehouse_does_nothing(resources, instance):
    meta = _retain(resources, instance).asset_materializations_for_node("storage_retention")[0].metadata
    assert meta["texts_dropped"].value == 0 and meta["quarantine_pruned"].value == 0


def test_retention_runs_daily_outside_the_hourly_job():
    from monitoring_pipeline.definitions import defs

    assert defs.resolve_schedule_def("storage_retention_schedule").job_name == "storage_retention_job"
    hourly = defs.resolve_job_def("hourly_monitoring")
    assert dg.AssetKey("storage_retention") not in hourly.asset_layer.executable_asset_keys
