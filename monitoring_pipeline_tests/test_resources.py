"""DuckDBWarehouse: what it waits out (another process's lock) and what it does not (everything else)."""

import subprocess
import sys
import threading
import time

import duckdb
import pytest

from monitoring_pipeline.resources import DuckDBWarehouse

# Holds the file for argv[2] seconds, as another run's ingest does.
HOLDER = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1])
conn.execute("CREATE TABLE IF NOT EXISTS t AS SELECT 1 AS a")
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
conn.close()
"""


def test_warehouse_bad_file_in_a_folder_named_blocked_fails_fast(tmp_path):
    """The old retry matched "lock" anywhere in the error, the path included ("blocked/"), and
    waited the whole connect timeout on an error no wait can fix."""
    path = tmp_path / "blocked" / "monitoring.duckdb"
    path.parent.mkdir()
    path.write_bytes(b"not a duckdb file, just garbage " * 200)
    warehouse = DuckDBWarehouse(database=str(path), connect_timeout_s=10)
    started = time.monotonic()
    with pytest.raises(duckdb.IOException, match="not a valid DuckDB database file"), warehouse.get_connection():
        pass
    assert time.monotonic() - started < 5  # milliseconds in fact; the timeout was 10 s


def test_warehouse_connection_is_utc_with_the_memory_limit(tmp_path):
    warehouse = DuckDBWarehouse(database=str(tmp_path / "w.duckdb"), memory_limit="512MB")
    with warehouse.get_connection() as conn:
        assert conn.execute("SELECT current_setting('TimeZone'), current_setting('memory_limit')").fetchone() == (
            "UTC",
            "488.2 MiB",  # 512 MB in DuckDB's units
        )


def test_warehouse_memory_limit_is_checked_before_connecting(tmp_path):
    path = tmp_path / "w.duckdb"
    bad = DuckDBWarehouse(database=str(path), memory_limit="1GB; DROP TABLE x")
    with pytest.raises(ValueError, match="memory_limit '1GB; DROP TABLE x'"), bad.get_connection():
        pass
    assert not path.exists()


def _seconds_to_read(warehouse: DuckDBWarehouse) -> float:
    """How long the warehouse took to connect and read the holder's row."""
    started = time.monotonic()
    with warehouse.get_connection() as conn:
        waited = time.monotonic() - started
        assert conn.execute("SELECT a FROM t").fetchall() == [(1,)]
    return waited


@pytest.mark.slow
def test_warehouse_waits_out_another_process_lock(tmp_path):
    path = str(tmp_path / "w.duckdb")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, path, "2"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        impatient = DuckDBWarehouse(database=path, connect_timeout_s=0)
        with pytest.raises(duckdb.IOException, match="Conflicting lock"), impatient.get_connection():
            pass  # no patience: DuckDB's lock error
        assert 0.5 < _seconds_to_read(DuckDBWarehouse(database=path, connect_timeout_s=60)) < 30
    finally:
        holder.wait(timeout=30)


# Holds the file through the warehouse, as another run's statements do: it holds the file's turn.
TURN_HOLDER = """
import sys, time
from monitoring_pipeline.resources import DuckDBWarehouse
with DuckDBWarehouse(database=sys.argv[1]).get_connection() as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS t AS SELECT 1 AS a")
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _hold_turn(path: str, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", TURN_HOLDER, path, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    return holder


@pytest.mark.slow
def test_warehouse_waits_in_line_for_the_turn_not_on_duckdbs_lock(tmp_path):
    """Another run's turn is waited for as long as it lasts (turn_timeout_s), however short
    connect_timeout_s is: a run never fails because another one's statements took long."""
    path = str(tmp_path / "w.duckdb")
    holder = _hold_turn(path, 2)
    try:
        assert 1 < _seconds_to_read(DuckDBWarehouse(database=path, connect_timeout_s=0)) < 30
    finally:
        holder.wait(timeout=30)
    assert (tmp_path / "w.duckdb.lock").read_text().startswith("held by pid ")


@pytest.mark.slow
def test_warehouse_turn_timeout_names_the_holder(tmp_path):
    path = str(tmp_path / "w.duckdb")
    holder = _hold_turn(path, 5)
    try:
        with (
            pytest.raises(TimeoutError, match=rf"w.duckdb: held by pid {holder.pid} since "),
            DuckDBWarehouse(database=path, turn_timeout_s=0.3).get_connection(),
        ):
            pass
    finally:
        holder.kill()
        holder.wait(timeout=30)
    with DuckDBWarehouse(database=path, turn_timeout_s=5).get_connection() as conn:  # a killed holder's turn is free
        assert conn.execute("SELECT a FROM t").fetchall() == [(1,)]


def test_warehouse_nested_and_threaded_connections_share_the_process_turn(tmp_path):
    warehouse = DuckDBWarehouse(database=str(tmp_path / "w.duckdb"), turn_timeout_s=5)
    with warehouse.get_connection() as outer, warehouse.get_connection() as inner:  # no wait for itself
        outer.execute("CREATE TABLE t (a INTEGER)")
        inner.execute("INSERT INTO t VALUES (1)")

    def insert(i: int) -> None:
        with warehouse.get_connection() as conn:
            conn.execute("INSERT INTO t VALUES ($i)", {"i": i})

    threads = [threading.Thread(target=insert, args=(i,)) for i in range(2, 10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    with warehouse.get_connection() as conn:
        assert conn.execute("SELECT count(*), sum(a) FROM t").fetchone() == (9, 45)
