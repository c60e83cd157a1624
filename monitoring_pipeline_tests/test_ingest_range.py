"""Ingest over a range of hours (a backfill's run reads all their files at once) writes the same
rows and records the same per-hour metadata and check results as runs of each hour alone."""

import json
import os
import pickle
from datetime import timedelta
from typing import NamedTuple

import dagster as dg
import duckdb
import pytest

from monitoring_pipeline.defs.ingest.assets import ALLOW_DELETED_FILES, llm_requests
from monitoring_pipeline.lib import hourly
from monitoring_pipeline.resources import DuckDBWarehouse
from monitoring_pipeline_tests.conftest import HOUR, LogWriter, config_writer, folder_resources, record
from monitoring_pipeline_tests.test_alerts import key

# Range runs against runs of each hour alone: several hours materialized twice (make test runs it).
pytestmark = pytest.mark.slow

HOURS = [HOUR + timedelta(hours=i) for i in range(7)]
KEYS = [key(h) for h in HOURS]


def write_dirty_hours(logs, tmp_path) -> None:
    """An hour of each kind ingest tells apart, side by side."""
    h = HOURS
    rec = lambda i, hour, **kw: json.dumps(record(i, hour, **kw))  # noqa: E731
    # clean, one file gzipped
    logs.records([record(i, h[0]) for i in range(3)], h[0], "a.jsonl")
    logs.records([record(i, h[0]) for i in range(3, 5)], h[0], "b.jsonl.gz")
    # a malformed line (the strict read names its file); an id the hour before also has is no duplicate
    logs.lines([rec(0, h[1]), "{oops", rec(1, h[1]), rec(2, h[1], request_id="shared")], h[1], "a.jsonl")
    logs.records([record(3, h[1]), record(4, h[1], request_id="req-10-00000")], h[1], "b.jsonl")
    # a duplicate request_id across files and an undecodable line: staged with exact numbers
    logs.records([record(0, h[2]), record(1, h[2])], h[2], "a.jsonl")
    logs.lines([rec(2, h[2]), rec(0, h[2], latency_ms=9.0), b'{"bad": "\xff"}'], h[2], "b.jsonl")
    # two files the strict read refuses (a duplicate key, a malformed line): the whole hour lenient
    logs.lines([rec(0, h[3]), rec(1, h[3])[:-1] + ', "status": "error"}', rec(2, h[3])], h[3], "a.jsonl")
    logs.lines(["{oops", rec(3, h[3])], h[3], "b.jsonl")
    logs.records([record(4, h[3])], h[3], "c.jsonl")
    # h[4]: no files at all
    # a timestamp outside the hour, a bad line sharing the id of a good row of h[1], a cut last line
    logs.lines(
        [rec(0, h[5]), rec(1, h[5], timestamp=h[6].isoformat()), rec(9, h[5], request_id="shared", latency_ms=-1), ""],
        h[5],
        "a.jsonl",
    )
    logs.lines([rec(2, h[5]), '{"request_id": "cut", "timest'], h[5], "c.jsonl", trailing_newline=False)
    # a symlink out of the log folder (refused, never read) beside a good file
    logs.records([record(i, h[6]) for i in range(2)], h[6], "a.jsonl")
    secret = tmp_path / "secret.txt"
    secret.write_text("not a log\n")
    os.symlink(secret, logs.folder(h[6]) / "evil.jsonl")


def _meta(metadata) -> dict:
    return {k: getattr(v, "value", v) for k, v in metadata.items() if k != "hours_in_run"}


def _check(evaluation) -> tuple:
    return evaluation.passed, evaluation.description, evaluation.severity, _meta(evaluation.metadata)


def _tables(path) -> tuple:
    with duckdb.connect(str(path), read_only=True) as conn:
        return (
            conn.execute("SELECT * FROM llm_requests ORDER BY ALL").fetchall(),
            conn.execute("SELECT * EXCLUDE (quarantined_at) FROM quarantine ORDER BY ALL").fetchall(),
        )


class Recorded(NamedTuple):
    metadata: dict  # partition -> asset -> metadata
    checks: dict  # partition -> the check's evaluation, for the hours recorded
    tables: tuple  # llm_requests and quarantine rows
    success: bool
    messages: list[str]  # what the run logged
    failure: str = ""


def _one_by_one(resources, tmp_path, tags=None) -> Recorded:
    """Each hour in its own run, as the schedule runs them."""
    path = tmp_path / "one_by_one.duckdb"
    resources = {**resources, "warehouse": DuckDBWarehouse(database=str(path))}
    metadata, checks = {}, {}
    with dg.DagsterInstance.ephemeral() as instance:
        for partition in KEYS:
            result = dg.materialize(
                [llm_requests], partition_key=partition, resources=resources, instance=instance, tags=tags
            )
            metadata[partition] = {
                m.asset_key.to_user_string(): _meta(m.metadata)
                for m in result.asset_materializations_for_node("llm_requests")
            }
            (evaluation,) = result.get_asset_check_evaluations()
            checks[partition] = _check(evaluation)
    return Recorded(metadata, checks, _tables(path), True, [])


def _ranged(resources, tmp_path, tags=None) -> Recorded:
    """All the hours in one run, as a backfill launches it, as the instance records it."""
    path = tmp_path / "ranged.duckdb"
    resources = {**resources, "warehouse": DuckDBWarehouse(database=str(path))}
    range_tags = {"dagster/asset_partition_range_start": KEYS[0], "dagster/asset_partition_range_end": KEYS[-1]}
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [llm_requests],
            resources=resources,
            instance=instance,
            raise_on_error=False,
            tags={**range_tags, **(tags or {})},
        )
        metadata = {
            partition: {asset: _latest_metadata(instance, asset, partition) for asset in ("llm_requests", "quarantine")}
            for partition in (KEYS if result.success else [])
        }
        messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    return Recorded(
        metadata,
        {e.partition: _check(e) for e in result.get_asset_check_evaluations()},
        _tables(path),
        result.success,
        messages,
        failures[0].event_specific_data.error.message if failures else "",
    )


def _latest_metadata(instance, asset: str, partition: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    return _meta(records[0].asset_materialization.metadata)


def assert_range_equals_hours(resources, tmp_path, tags=None) -> tuple[Recorded, Recorded]:
    alone, ranged = _one_by_one(resources, tmp_path, tags), _ranged(resources, tmp_path, tags)
    assert_same(alone, ranged)
    return alone, ranged


def assert_same(alone: Recorded, ranged: Recorded) -> None:
    assert ranged.success
    assert ranged.tables == alone.tables
    assert ranged.metadata == alone.metadata
    # A range records the check's first and last hour, failures and recoveries: each as alone.
    assert {KEYS[0], KEYS[-1]} <= set(ranged.checks)
    assert ranged.checks == {k: alone.checks[k] for k in ranged.checks}
    assert all(alone.checks[k][0] for k in set(KEYS) - set(ranged.checks))  # the hours left out passed


def ingested_both_ways(start_from, tmp_path) -> tuple[Recorded, Recorded]:
    """write_dirty_hours' hours ingested hour by hour (one_by_one.duckdb) and as one range
    (ranged.duckdb): built once per session (16 runs' worth of Dagster time, 8 of them shared),
    copied into tmp_path with the logs; returns what each way recorded."""

    def build(root):
        write_dirty_hours(LogWriter(root / "logs"), root)
        config_writer(root)
        resources = folder_resources(root)
        recorded = _one_by_one(resources, root), _ranged(resources, root)
        (root / "recorded.pickle").write_bytes(pickle.dumps(recorded))

    start_from("dirty hours ingested both ways", build)
    return pickle.loads((tmp_path / "recorded.pickle").read_bytes())


def _one_by_one_in_range(recorded: Recorded) -> bool:
    return any("hours one by one" in m for m in recorded.messages)


def test_ingest_range_run_writes_and_records_each_hour_as_its_own_run(start_from, tmp_path):
    alone, ranged = ingested_both_ways(start_from, tmp_path)
    assert_same(alone, ranged)
    assert not _one_by_one_in_range(ranged)  # one read of all the hours' files
    meta = alone.metadata
    # The hours are what they say: the fast path held for all of them (no hour staged file by file).
    by_hour = [meta[k]["llm_requests"] for k in KEYS]
    assert [m["fast_path_fallback"] for m in by_hour] == [0] * len(KEYS)
    assert [m["lenient_read_files"] for m in by_hour] == [0, 1, 1, 3, 0, 1, 0]
    assert [m["exact_path_files"] for m in by_hour] == [0, 0, 2, 1, 0, 0, 0]
    assert [m["rows_ingested"] for m in by_hour] == [5, 5, 3, 4, 0, 2, 2]
    assert meta[KEYS[5]]["llm_requests"]["quarantine_reasons"] == {
        "empty_line": 1,
        "invalid_value:latency_ms": 1,
        "timestamp_outside_hour": 1,
        "truncated_last_line": 1,
    }
    assert meta[KEYS[6]]["llm_requests"]["unreadable_files"] == 1


def test_ingest_range_run_in_windows_of_a_few_hours_writes_and_records_the_same(logs, resources, tmp_path, monkeypatch):
    """Hours of many calls are read a few at a time (windows by the files' sizes), to the same end."""
    monkeypatch.setattr(hourly, "ROWS_PER_STATEMENT", 1)  # every hour a window of its own
    write_dirty_hours(logs, tmp_path)
    ranged = assert_range_equals_hours(resources, tmp_path)[1]
    assert any("7 hours in 7 windows of at most 1 rows" in m for m in ranged.messages)


def test_ingest_range_run_with_an_unreadable_file_replaces_each_hour_as_its_own_run(logs, resources, tmp_path):
    """A file no read can take (a corrupt .gz) fails the range's one read: each hour is then
    replaced alone, and only that file's hour leaves the fast path."""
    write_dirty_hours(logs, tmp_path)
    (logs.folder(HOURS[2]) / "broken.jsonl.gz").write_bytes(b"\x1f\x8b not really gzip")
    alone, ranged = assert_range_equals_hours(resources, tmp_path)
    assert _one_by_one_in_range(ranged)
    assert [alone.metadata[k]["llm_requests"]["fast_path_fallback"] for k in KEYS] == [0, 0, 1, 0, 0, 0, 0]


def test_ingest_range_rerun_replaces_its_hours_with_the_same_rows(logs, resources, tmp_path):
    write_dirty_hours(logs, tmp_path)
    first = _ranged(resources, tmp_path)
    again = _ranged(resources, tmp_path)
    assert again.tables == first.tables and again.metadata == first.metadata
    assert len(first.tables[0]) == 21


def test_ingest_range_with_files_gone_fails_before_changing_any_hour(start_from, logs, resources, tmp_path):
    ingested_both_ways(start_from, tmp_path)
    before = _tables(tmp_path / "ranged.duckdb")
    (logs.folder(HOURS[1]) / "b.jsonl").unlink()
    (logs.folder(HOURS[6]) / "a.jsonl").unlink()
    (logs.folder(HOURS[0]) / "late.jsonl").write_text(json.dumps(record(7)) + "\n")  # would change h[0]
    after = _ranged(resources, tmp_path)
    assert not after.success and after.tables == before
    message = after.failure
    assert "2026-03-01 11:00 UTC was ingested from 1 file(s) no longer in" in message
    assert "2026-03-01 16:00 UTC was ingested from 1 file(s) no longer in" in message
    assert ALLOW_DELETED_FILES in message


def test_ingest_range_with_files_gone_allowed_records_them_per_hour(start_from, logs, resources, tmp_path):
    ingested_both_ways(start_from, tmp_path)
    (logs.folder(HOURS[1]) / "b.jsonl").unlink()
    meta = assert_range_equals_hours(resources, tmp_path, tags={ALLOW_DELETED_FILES: "true"})[0].metadata
    assert meta[KEYS[1]]["llm_requests"]["files_gone"] == {"b.jsonl": 2}
    assert all("files_gone" not in meta[k]["llm_requests"] for k in KEYS if k != KEYS[1])
