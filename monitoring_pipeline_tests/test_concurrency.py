"""Several processes on one DuckDB file: runs of different hours, a failing asset, a reader."""

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest

from monitoring_pipeline.lib.partitions import partition_key
from monitoring_pipeline.resources import DuckDBWarehouse
from monitoring_pipeline_tests import hour_process
from monitoring_pipeline_tests.conftest import HOUR, record

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

# Holds a read-only connection open for argv[2] seconds: someone querying the file.
READER = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1], read_only=True)
print("open", flush=True)
time.sleep(float(sys.argv[2]))
conn.close()
print("closed", time.time(), flush=True)
"""


def _start(code: str, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=REPO,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _run_hour(tmp_path, logs, config_file, partition: str, timeout: float = 120.0) -> hour_process.HourProcess:
    """One hour's materialization in its own OS process, on its own Dagster instance."""
    return hour_process.start(tmp_path / "monitoring.duckdb", logs.root, config_file.path, partition, timeout, tmp_path)


def test_concurrency_processes_materializing_different_hours_all_succeed(tmp_path, logs, config_file, query):
    hours = [HOUR + timedelta(hours=h) for h in range(4)]
    for n, hour in enumerate(hours):
        logs.records([record(i, hour) for i in range(2000 + 100 * n)], hour)
    procs = [_run_hour(tmp_path, logs, config_file, partition_key(hour)) for hour in hours]
    for proc in procs:
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    counts = dict(query("SELECT hour, count(*) FROM llm_requests GROUP BY hour"))
    assert counts == {hour.replace(tzinfo=None): 2000 + 100 * n for n, hour in enumerate(hours)}
    metrics = dict(query("SELECT hour, requests FROM hourly_metrics"))
    assert metrics == counts
    assert len(query("SELECT DISTINCT hour FROM review_sample")) == 4


def test_concurrency_failed_asset_leaves_the_file_usable(
    tmp_path, logs, config_file, resources, instance, query, run_hour
):
    logs.records([record(i) for i in range(100)])
    run_hour()

    @dg.asset(partitions_def=dg.HourlyPartitionsDefinition(start_date="2026-01-01-00:00"), pool="duckdb")
    def broken(warehouse: DuckDBWarehouse):
        with warehouse.get_connection() as conn:
            conn.execute("BEGIN")
            conn.execute("DELETE FROM llm_requests")
            raise RuntimeError("boom halfway through a write")

    result = dg.materialize(
        [broken], partition_key="2026-03-01-10:00", resources=resources, instance=instance, raise_on_error=False
    )
    assert not result.success
    # Another process can open the file at once: the failed asset closed it and rolled back.
    proc = _run_hour(tmp_path, logs, config_file, "2026-03-01-10:00", timeout=1)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert query("SELECT count(*) FROM llm_requests") == [(100,)]


def test_concurrency_reader_delays_a_run_only_until_it_closes(tmp_path, logs, config_file, run_hour, query):
    logs.lines([json.dumps(record(i)) for i in range(100)] + ["not json"])
    run_hour()  # the file exists
    reader = _start(READER, tmp_path / "monitoring.duckdb", 3)
    assert reader.stdout.readline().strip() == "open"
    proc = _run_hour(tmp_path, logs, config_file, "2026-03-01-10:00", timeout=120)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    out, _ = reader.communicate(timeout=30)
    closed_at = datetime.fromtimestamp(float(out.split()[1]), timezone.utc).replace(tzinfo=None)
    # The run wrote only after the reader let go (it waited, it did not fail).
    assert query("SELECT count(*) FROM llm_requests") == [(100,)]
    (written_at,) = query("SELECT quarantined_at FROM quarantine")[0]
    assert written_at >= closed_at


def test_concurrency_reader_that_never_closes_fails_the_run_after_the_timeout(tmp_path, logs, config_file, run_hour):
    """The bound: a run waits at most connect_timeout_s (120 s by default) for a reader, then fails
    with DuckDB's lock error and leaves the file as it was; the next run succeeds."""
    timeout = 1
    logs.records([record(i) for i in range(100)])
    run_hour()
    reader = _start(READER, tmp_path / "monitoring.duckdb", 600)
    try:
        assert reader.stdout.readline().strip() == "open"
        proc = _run_hour(tmp_path, logs, config_file, "2026-03-01-10:00", timeout=timeout)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 1
        assert "lock" in err.lower()
    finally:
        reader.kill()
        reader.wait()
    proc = _run_hour(tmp_path, logs, config_file, "2026-03-01-10:00", timeout=timeout)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
