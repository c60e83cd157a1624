"""storage_retention: old text gone, recent text kept, metrics and review sample unchanged,
old quarantine pruned, the file compacted."""

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from monitoring_pipeline.defs.maintenance.retention import compact, storage_retention
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


@pytest.mark.slow
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


WRITER = """
import sys, time, duckdb
path, marker = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 60
while True:
    try:
        conn = duckdb.connect(path)
        break
    except duckdb.IOException as err:
        if "lock" not in str(err).lower() or time.monotonic() > deadline:
            raise
        open(marker, "a").write("locked\\n")
        time.sleep(0.05)
conn.execute("CREATE TABLE IF NOT EXISTS written_meanwhile (x INTEGER)")
conn.execute("INSERT INTO written_meanwhile VALUES (42)")
conn.close()
open(marker, "a").write("written\\n")
"""


@pytest.mark.slow
def test_retention_compaction_keeps_a_concurrent_writers_rows(logs, resources, run_hour, query, tmp_path, monkeypatch):
    """A writer outside the pool that gets in while compaction swaps the file: its row survives."""
    logs.records([record(i) for i in range(50)])
    run_hour()
    path = tmp_path / "monitoring.duckdb"
    marker = tmp_path / "writer.log"
    real_replace = os.replace
    writers = []

    def replace_with_a_writer_racing(src, dst):
        if Path(dst) == path:
            writers.append(subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(marker)]))
            deadline = time.monotonic() + 60
            while not marker.exists() and time.monotonic() < deadline:  # the writer has had its go at the file
                time.sleep(0.02)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_with_a_writer_racing)
    compact(resources["warehouse"])
    monkeypatch.setattr(os, "replace", real_replace)
    (writer,) = writers
    assert writer.wait(timeout=60) == 0
    assert query("SELECT x FROM written_meanwhile") == [(42,)]  # before the fix: no such table, the row lost
    assert marker.read_text().splitlines()[0] == "locked"  # it had to wait for the swap
    assert query("SELECT count(*) FROM llm_requests") == [(50,)]
