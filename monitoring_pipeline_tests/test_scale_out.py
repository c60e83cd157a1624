"""Beyond one machine: storage stays behind the warehouse resource, logs may live in object storage."""

from contextlib import contextmanager
from datetime import datetime

import dagster as dg
import duckdb
import pytest

from monitoring_pipeline.resources import DuckDBWarehouse, LogSource, duckdb_glob
from monitoring_pipeline_tests.conftest import ALL_ASSETS, HOUR, PARTITION, record


class AttachedWarehouse(DuckDBWarehouse):
    """Another engine set-up behind the same interface: an in-memory DuckDB that ATTACHes the
    database by name and USEs it, the way a MotherDuck (`md:`) or remote catalog is reached."""

    attach: str

    @contextmanager
    def get_connection(self):
        conn = duckdb.connect()
        try:
            conn.execute(f"ATTACH '{self.attach}' AS warehouse")
            conn.execute("USE warehouse")
            conn.execute("SET TimeZone = 'UTC'")
            yield conn
        finally:
            conn.close()


@pytest.mark.slow
def test_scale_out_assets_run_unchanged_on_another_warehouse_implementation(tmp_path, logs, resources, instance):
    logs.records([record(i) for i in range(50)])
    attached = tmp_path / "elsewhere.duckdb"
    swapped = {**resources, "warehouse": AttachedWarehouse(attach=str(attached))}
    result = dg.materialize(ALL_ASSETS, partition_key=PARTITION, resources=swapped, instance=instance)
    assert result.success
    with duckdb.connect(str(attached), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM llm_requests").fetchone() == (50,)
        assert conn.execute("SELECT requests FROM hourly_metrics").fetchone() == (50,)
    assert not (tmp_path / "monitoring.duckdb").exists()  # nothing went to the default file


def test_scale_out_warehouse_path_comes_from_its_own_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("TEAM_WAREHOUSE", str(tmp_path / "team.duckdb"))
    warehouse = DuckDBWarehouse(env_var="TEAM_WAREHOUSE")
    with warehouse.get_connection() as conn:
        conn.execute("CREATE TABLE t AS SELECT 1 AS x")
    assert warehouse.path == str(tmp_path / "team.duckdb") and (tmp_path / "team.duckdb").exists()


def test_scale_out_log_source_builds_object_store_globs():
    logs = LogSource(log_dir="s3://acme-llm-logs/prod/")
    assert logs.is_remote
    assert logs.hour_globs(datetime(2026, 3, 1, 10)) == [
        "s3://acme-llm-logs/prod/dt=2026-03-01/hour=10/*.jsonl",
        "s3://acme-llm-logs/prod/dt=2026-03-01/hour=10/*.jsonl.gz",
    ]


def test_scale_out_duckdb_glob_lists_what_the_local_listing_lists(logs):
    logs.records([record(0)], name="a.jsonl")
    logs.records([record(1)], name="b.jsonl.gz")
    logs.records([record(2)], name="notes.txt")
    local = LogSource(log_dir=str(logs.root))
    hour = HOUR.replace(tzinfo=None)
    assert duckdb_glob(local.hour_globs(hour)) == local.files_for_hour(hour)
    assert [f.rsplit("/", 1)[1] for f in local.files_for_hour(hour)] == ["a.jsonl", "b.jsonl.gz"]
