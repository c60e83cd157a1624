"""Ingest and the hour's files: files that are gone never wipe an hour, files outside the log
folder are never read, and lines too long for DuckDB's reader are counted."""

import json
import os

import dagster as dg
import pytest

from monitoring_pipeline.defs.ingest.assets import ALLOW_DELETED_FILES, llm_requests
from monitoring_pipeline.defs.ingest.files import overlong_lines
from monitoring_pipeline_tests.conftest import PARTITION, record


def _snapshot(query, tmp_path):
    csv = tmp_path / "review" / "dt=2026-03-01" / "hour=10" / "review_sample.csv"
    return (
        query("SELECT count(*) FROM llm_requests"),
        query("SELECT count(*) FROM quarantine"),
        query("SELECT * FROM hourly_metrics"),
        query("SELECT * FROM hourly_model_metrics ORDER BY model"),
        query("SELECT request_id FROM review_sample ORDER BY request_id"),
        csv.read_bytes(),
    )


def _ingest_meta(result):
    return result.asset_materializations_for_node("llm_requests")[0].metadata


@pytest.mark.slow
def test_ingest_hour_whose_files_are_gone_fails_and_changes_nothing(logs, run_hour, query, tmp_path):
    first = logs.records([record(i) for i in range(300)])
    logs.lines(["not json"], name="other.jsonl")
    assert run_hour().success
    before = _snapshot(query, tmp_path)
    assert before[0] == [(300,)] and len(before[4]) > 0

    first.unlink()
    (logs.folder() / "other.jsonl").unlink()  # the log shipper expired the whole hour
    result = run_hour(raise_on_error=False)

    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failure.step_key == "llm_requests"
    message = failure.event_specific_data.error.message
    assert "2026-03-01 10:00 UTC" in message and str(logs.folder()) in message and ALLOW_DELETED_FILES in message
    started = {e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START}
    assert started == {"llm_requests"}  # the metrics and the review sample were not recomputed
    assert _snapshot(query, tmp_path) == before  # rows, metrics, sample and its CSV untouched


def test_ingest_hour_with_some_files_gone_fails_naming_them(logs, run_hour, query):
    logs.records([record(i) for i in range(10)], name="a.jsonl")
    gone = logs.records([record(i) for i in range(10, 15)], name="b.jsonl")
    assert run_hour(assets=[llm_requests]).success
    gone.unlink()
    result = run_hour(assets=[llm_requests], raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "b.jsonl" in failure.event_specific_data.error.message
    assert "a.jsonl" not in failure.event_specific_data.error.message
    assert query("SELECT count(*) FROM llm_requests") == [(15,)]


@pytest.mark.slow
def test_ingest_deleted_files_replaced_when_the_run_tag_allows_it(logs, resources, instance, query):
    logs.records([record(i) for i in range(10)], name="a.jsonl")
    gone = logs.records([record(i) for i in range(10, 15)], name="b.jsonl")
    dg.materialize([llm_requests], partition_key=PARTITION, resources=resources, instance=instance)
    gone.unlink()
    result = dg.materialize(
        [llm_requests],
        partition_key=PARTITION,
        resources=resources,
        instance=instance,
        tags={ALLOW_DELETED_FILES: "true"},
    )
    assert _ingest_meta(result)["files_gone"].value == {"b.jsonl": 5}
    assert query("SELECT count(*) FROM llm_requests") == [(10,)]


@pytest.mark.slow
def test_ingest_same_files_under_a_moved_log_root_is_not_a_deletion(logs, resources, instance, tmp_path, query):
    logs.records([record(i) for i in range(10)])
    dg.materialize([llm_requests], partition_key=PARTITION, resources=resources, instance=instance)
    moved = tmp_path / "mounted-elsewhere"
    logs.root.rename(moved)
    result = dg.materialize(
        [llm_requests],
        partition_key=PARTITION,
        resources={**resources, "logs": type(resources["logs"])(log_dir=str(moved))},
        instance=instance,
    )
    assert result.success and "files_gone" not in _ingest_meta(result)
    assert query("SELECT DISTINCT source_file LIKE ? FROM llm_requests", [f"{moved}%"]) == [(True,)]


@pytest.mark.slow
def test_ingest_symlink_outside_the_log_folder_is_refused_unread(logs, run_hour, query, tmp_path):
    secret = tmp_path / "passwd"
    secret.write_text("".join(f"user{i}:x:{i}:{i}::/home/user{i}:/bin/sh\n" for i in range(25)))
    logs.records([record(i) for i in range(3)])
    os.symlink(secret, logs.folder() / "evil.jsonl")
    inside = logs.records([record(i) for i in range(3, 5)], name="real.jsonl.keep")
    os.symlink(inside, logs.folder() / "alias.jsonl")  # a link within the log folder is read

    result = run_hour(assets=[llm_requests])

    meta = _ingest_meta(result)
    assert query("SELECT source_file, line_number, reason, raw_line FROM quarantine") == [
        (str(logs.folder() / "evil.jsonl"), None, "unreadable_file: symlink outside the log folder", None)
    ]
    assert query("SELECT count(*) FROM llm_requests") == [(5,)]
    assert (meta["lines_read"].value, meta["rows_quarantined"].value, meta["unreadable_files"].value) == (6, 1, 1)
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert "user1" not in json.dumps(query("SELECT * FROM quarantine"), default=str)


@pytest.mark.slow
def test_ingest_line_over_32mb_is_quarantined_and_counted(logs, run_hour, query):
    huge = json.dumps(record(1, prompt="x" * (40 << 20)))
    logs.lines([json.dumps(record(0)), huge, json.dumps(record(2)), "not json", json.dumps(record(3))])
    meta = _ingest_meta(run_hour(assets=[llm_requests]))
    assert query("SELECT line_number, reason FROM quarantine ORDER BY line_number") == [
        (2, "unreadable_line:line_size_over_maximum"),
        (4, "malformed_json"),
    ]
    assert query("SELECT request_id FROM llm_requests ORDER BY 1") == [
        ("req-10-00000",),
        ("req-10-00002",),
        ("req-10-00003",),
    ]
    assert (meta["lines_read"].value, meta["rows_ingested"].value, meta["rows_quarantined"].value) == (5, 3, 2)


@pytest.mark.slow
def test_ingest_line_over_16mb_is_still_ingested(logs, run_hour, query):
    logs.lines([json.dumps(record(0)), json.dumps(record(1, prompt="y" * (20 << 20)))], name="a.jsonl.gz")
    meta = _ingest_meta(run_hour(assets=[llm_requests]))
    assert query("SELECT request_id, length(prompt) FROM llm_requests ORDER BY 1") == [
        ("req-10-00000", 5),
        ("req-10-00001", 20 << 20),
    ]
    assert meta["lines_read"].value == 2


def test_ingest_overlong_lines_are_found_by_block_scan(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"a\n" + b"x" * 3_000_000 + b"\nb\n" + b"y" * 2_500_000)
    assert overlong_lines(str(path), 2_000_000) == [(2, 3_000_000), (4, 2_500_000)]
    assert overlong_lines(str(path), 3_000_000) == []


@pytest.mark.slow
def test_ingest_line_beyond_the_read_buffer_fails_the_hour_unchanged(logs, run_hour, query):
    logs.records([record(0)], name="a.jsonl")
    assert run_hour(assets=[llm_requests]).success
    logs.lines([json.dumps(record(1)), json.dumps(record(2, prompt="z" * (70 << 20)))], name="b.jsonl")
    result = run_hour(assets=[llm_requests], raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "b.jsonl has lines longer than the 64 MB DuckDB reads: line 2 (70 MB)" in (
        failure.event_specific_data.error.message
    )
    assert query("SELECT request_id FROM llm_requests") == [("req-10-00000",)]
