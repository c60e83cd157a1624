"""Ingest: every line is ingested or quarantined with a reason, and re-runs give the same rows."""

import json
import threading
import time
from datetime import timedelta

import pytest

from monitoring_pipeline.defs.ingest.assets import llm_requests
from monitoring_pipeline_tests.conftest import HOUR, PARTITION, record


def ingest(run_hour, partition=PARTITION):
    result = run_hour(partition, assets=[llm_requests])
    return result.asset_materializations_for_node("llm_requests")[0].metadata


def quarantine(query):
    return query("SELECT line_number, reason FROM quarantine ORDER BY source_file, line_number")


def test_ingest_valid_lines_become_rows_with_typed_values(logs, run_hour, query):
    logs.records([record(0, feedback=4, safety_flags=["pii"]), record(1, status="error", error_type="timeout")])
    meta = ingest(run_hour)
    assert meta["rows_ingested"].value == 2 and meta["rows_quarantined"].value == 0
    rows = query(
        'SELECT request_id, "timestamp", latency_ms, input_tokens, status, error_type, feedback,'
        " safety_flags, hour FROM llm_requests ORDER BY request_id"
    )
    assert rows[0][0] == "req-10-00000"
    assert rows[0][1] == HOUR.replace(tzinfo=None)
    assert rows[0][2:] == (500.0, 100, "ok", None, 4, ["pii"], HOUR.replace(tzinfo=None))
    assert rows[1][4:7] == ("error", "timeout", None)


# Every bad input kind with the reason ingest gives it; test_contract runs the per-record ones
# through the app-side validator too, which must give the same first reason.
BAD_LINES = [
    (b'{"request_id": "x", "model": ', "malformed_json"),
    (b"[1, 2, 3]", "not_a_json_object"),
    (b"", "empty_line"),
    (b'{"request_id": "caf\xe9"}', "invalid_utf8"),
    (json.dumps(record(1, model=None)).encode(), "missing_field:model"),
    (json.dumps(record(1, timestamp=None)).encode(), "missing_field:timestamp"),
    (json.dumps(record(1, request_id="")).encode(), "invalid_value:request_id"),
    (json.dumps(record(1, latency_ms="fast")).encode(), "wrong_type:latency_ms"),
    (json.dumps(record(1, input_tokens=12.5)).encode(), "wrong_type:input_tokens"),
    (json.dumps(record(1, output_tokens="50")).encode(), "wrong_type:output_tokens"),
    (json.dumps(record(1, safety_flags="pii")).encode(), "wrong_type:safety_flags"),
    (json.dumps(record(1, safety_flags=["pii", 3])).encode(), "wrong_type:safety_flags"),
    (json.dumps(record(1, feedback=True)).encode(), "wrong_type:feedback"),
    (json.dumps(record(1, latency_ms=-1)).encode(), "invalid_value:latency_ms"),
    (json.dumps(record(1, latency_ms=float("nan"))).encode(), "invalid_value:latency_ms"),
    (json.dumps(record(1, latency_ms=1e400)).encode(), "invalid_value:latency_ms"),
    (json.dumps(record(1, input_tokens=-3)).encode(), "invalid_value:input_tokens"),
    (json.dumps(record(1, output_tokens=-3)).encode(), "invalid_value:output_tokens"),
    (json.dumps(record(1, feedback=0)).encode(), "invalid_value:feedback"),
    (json.dumps(record(1, feedback=6)).encode(), "invalid_value:feedback"),
    (json.dumps(record(1, feedback=2**64 - 1)).encode(), "invalid_value:feedback"),  # beyond BIGINT
    (json.dumps(record(1, status="maybe")).encode(), "invalid_value:status"),
    (json.dumps(record(1, timestamp="yesterday")).encode(), "invalid_value:timestamp"),
    (json.dumps(record(1, timestamp="2026-03-01T10:30:00")).encode(), "invalid_value:timestamp"),
    (json.dumps(record(1, timestamp="2026-03-01T11:00:00+00:00")).encode(), "timestamp_outside_hour"),
    (json.dumps(record(0)).encode(), "duplicate_request_id"),
    # bounds of the contract: one absurd line must never cost the hour its metrics
    (json.dumps(record(1, input_tokens=2**63 - 1)).encode(), "invalid_value:input_tokens"),
    (json.dumps(record(1, input_tokens=2**63)).encode(), "invalid_value:input_tokens"),  # UBIGINT
    (json.dumps(record(1, output_tokens=2**64)).encode(), "invalid_value:output_tokens"),  # read as a real
    (json.dumps(record(1, output_tokens=-(2**63) - 1)).encode(), "invalid_value:output_tokens"),
    (json.dumps(record(1, input_tokens=10**12 + 1)).encode(), "invalid_value:input_tokens"),
    (json.dumps(record(1, output_length=10**13)).encode(), "invalid_value:output_length"),
    (json.dumps(record(1, latency_ms=86_400_001)).encode(), "invalid_value:latency_ms"),
    (json.dumps(record(1, feedback=2**70)).encode(), "invalid_value:feedback"),
    (json.dumps(record(1, input_tokens=1e3)).encode(), "wrong_type:input_tokens"),
    (json.dumps(record(1, timestamp="2026-03-01T10:30:00 +00:00")).encode(), "invalid_value:timestamp"),
    (json.dumps(record(1, timestamp="2026-03-01T24:00:00+00:00")).encode(), "invalid_value:timestamp"),
    (json.dumps(record(1, timestamp="2026-W09-7T10:30:00Z")).encode(), "invalid_value:timestamp"),
    (json.dumps(record(1, status="error", latency_ms=-1, model=5)).encode(), "wrong_type:model"),
    (json.dumps(record(1, feedback=9, input_tokens="1", status=None)).encode(), "missing_field:status"),
    # a duplicate key comes before the field rules: which of its values is meant is unknown
    (json.dumps(record(1, feedback=9)).replace("}", ', "status": "error"}'), "duplicate_key:status"),
]


def test_ingest_quarantines_each_bad_input_kind_with_its_reason(logs, run_hour, query):
    """Every case above at once, each in a file of its own between two good lines (ids unique to the
    file): one materialization for all of them, as a file's bad lines never change another file's
    (test_ingest_a_bad_line_numbers_its_own_file_and_leaves_the_others_whole). The duplicate id's
    first copy is the first file's first line."""
    for k, (line, _reason) in enumerate(BAD_LINES):
        good = [json.dumps(record(100 * k)), json.dumps(record(100 * k + 2))]
        logs.lines([good[0], line, good[1]], name=f"case-{k:02d}.jsonl")
    meta = ingest(run_hour)
    found = query("SELECT parse_filename(source_file), line_number, reason FROM quarantine ORDER BY ALL")
    assert found == [(f"case-{k:02d}.jsonl", 2, reason) for k, (_line, reason) in enumerate(BAD_LINES)]
    assert meta["rows_ingested"].value == 2 * len(BAD_LINES)
    assert (
        meta["lines_read"].value == 3 * len(BAD_LINES) == meta["rows_ingested"].value + meta["rows_quarantined"].value
    )


def with_duplicate_key(i: int, key: str = "status", value: str = '"error"') -> str:
    """A valid record's line with `key` appended again: `"status": "ok", ..., "status": "error"`."""
    return json.dumps(record(i))[:-1] + f', "{key}": {value}}}'


@pytest.mark.parametrize("name", ["app.jsonl", "app.jsonl.gz"])
@pytest.mark.slow
def test_ingest_duplicate_key_is_quarantined_with_its_line_number(logs, run_hour, query, name):
    logs.lines([json.dumps(record(0)), with_duplicate_key(1), json.dumps(record(2))], name=name)
    logs.records([record(3), record(4)], name="other.jsonl")
    meta = ingest(run_hour)
    assert query("SELECT parse_filename(source_file), line_number, reason, raw_line FROM quarantine") == [
        (name, 2, "duplicate_key:status", with_duplicate_key(1))
    ]
    assert query("SELECT request_id, status FROM llm_requests ORDER BY 1") == [
        (f"req-10-0000{i}", "ok") for i in (0, 2, 3, 4)
    ]
    assert (meta["lines_read"].value, meta["rows_ingested"].value, meta["rows_quarantined"].value) == (5, 4, 1)
    assert meta["fast_path_fallback"].value == 0 and meta["exact_path_files"].value == 1


@pytest.mark.slow
def test_ingest_duplicate_key_beside_a_malformed_line_in_another_file_is_found(logs, run_hour, query):
    """The strict read names one refused file; a duplicate key elsewhere is still found."""
    logs.lines([json.dumps(record(0)), "{oops", json.dumps(record(1)), with_duplicate_key(2)], name="a.jsonl")
    logs.lines([json.dumps(record(3)), "{oops", json.dumps(record(4))], name="b.jsonl")
    logs.lines([with_duplicate_key(5, "model", '"x"'), json.dumps(record(6))], name="c.jsonl")
    logs.records([record(7)], name="d.jsonl")
    meta = ingest(run_hour)
    assert query("SELECT parse_filename(source_file), line_number, reason FROM quarantine ORDER BY 1, 2") == [
        ("a.jsonl", 2, "malformed_json"),
        ("a.jsonl", 4, "duplicate_key:status"),
        ("b.jsonl", 2, "malformed_json"),
        ("c.jsonl", 1, "duplicate_key:model"),
    ]
    assert query("SELECT count(*) FROM llm_requests") == [(6,)]
    assert (meta["lines_read"].value, meta["rows_ingested"].value, meta["rows_quarantined"].value) == (10, 6, 4)
    assert meta["fast_path_fallback"].value == 0


@pytest.mark.slow
def test_ingest_duplicate_key_outside_the_contract_is_ignored(logs, run_hour, query):
    logs.lines([with_duplicate_key(0, "trace_id", '"a"').replace("}", ', "trace_id": "b"}')])
    meta = ingest(run_hour)
    assert query("SELECT request_id FROM llm_requests") == [("req-10-00000",)]
    assert meta["rows_quarantined"].value == 0


@pytest.mark.slow
def test_ingest_clean_hour_takes_the_strict_fast_path(logs, run_hour):
    logs.records([record(i) for i in range(3)], name="a.jsonl")
    logs.records([record(i) for i in range(3, 5)], name="b.jsonl.gz")
    meta = ingest(run_hour)
    assert meta["rows_ingested"].value == 5
    assert (meta["fast_path_fallback"].value, meta["exact_path_files"].value, meta["lenient_read_files"].value) == (
        0,
        0,
        0,
    )


@pytest.mark.slow
def test_ingest_truncated_last_line_is_named_and_keeps_its_raw_text(logs, run_hour, query):
    logs.lines([json.dumps(record(0)), '{"request_id": "cut", "timest'], trailing_newline=False)
    ingest(run_hour)
    assert query("SELECT line_number, reason, raw_line FROM quarantine") == [
        (2, "truncated_last_line", '{"request_id": "cut", "timest')
    ]


@pytest.mark.slow
def test_ingest_line_numbers_stay_exact_after_undecodable_lines(logs, run_hour, query):
    lines = [json.dumps(record(i)).encode() for i in range(8)]
    lines[1] = b'{"bad": "\xff\xfe"}'
    lines[2] = b'{"bad": "\xc3"}'
    lines[5] = b"{not json"
    lines[6] = b'{"nul": "a\x00b"}'
    logs.lines(lines)
    meta = ingest(run_hour)
    assert quarantine(query) == [
        (2, "invalid_utf8"),
        (3, "invalid_utf8"),
        (6, "malformed_json"),
        (7, "unreadable_line:too_many_columns"),
    ]
    assert sorted(r[0] for r in query("SELECT request_id FROM llm_requests")) == [
        "req-10-00000",
        "req-10-00003",
        "req-10-00004",
        "req-10-00007",
    ]
    assert meta["lines_read"].value == 8


def test_ingest_a_bad_line_numbers_its_own_file_and_leaves_the_others_whole(logs, run_hour, query):
    logs.records([record(i) for i in range(4)], name="a.jsonl")
    logs.lines([json.dumps(record(4)), json.dumps(record(5)), "{oops", json.dumps(record(6))], name="b.jsonl")
    logs.records([record(i) for i in range(7, 9)], name="c.jsonl")
    meta = ingest(run_hour)
    assert query("SELECT parse_filename(source_file), line_number, reason FROM quarantine") == [
        ("b.jsonl", 3, "malformed_json")
    ]
    assert query("SELECT parse_filename(source_file), count(*) FROM llm_requests GROUP BY ALL ORDER BY 1") == [
        ("a.jsonl", 4),
        ("b.jsonl", 3),
        ("c.jsonl", 2),
    ]
    assert (meta["lines_read"].value, meta["rows_ingested"].value, meta["rows_quarantined"].value) == (10, 9, 1)
    assert meta["quarantine_reasons"].value == {"malformed_json": 1}


@pytest.mark.slow
def test_ingest_repeated_bad_lines_each_get_their_own_number(logs, run_hour, query):
    logs.lines(
        [json.dumps(record(0)), "{oops", "", json.dumps(record(1)), "{oops", "", json.dumps(record(2)), "{oops"],
        trailing_newline=False,
    )
    meta = ingest(run_hour)
    assert quarantine(query) == [
        (2, "malformed_json"),
        (3, "empty_line"),
        (5, "malformed_json"),
        (6, "empty_line"),
        (8, "truncated_last_line"),
    ]
    assert (meta["lines_read"].value, meta["rows_ingested"].value) == (8, 3)


@pytest.mark.slow
def test_ingest_a_bad_line_with_the_request_id_of_a_good_one_is_still_quarantined(logs, run_hour, query):
    """Bad lines are looked for among lines whose request_id is not loaded; one that shares a loaded
    id is missed there, which the per-file counts catch."""
    logs.lines(
        [json.dumps(record(0)), json.dumps(record(1)), json.dumps(record(0, latency_ms=-1)), json.dumps(record(2))]
    )
    meta = ingest(run_hour)
    assert quarantine(query) == [(3, "invalid_value:latency_ms")]
    assert query("SELECT request_id, latency_ms FROM llm_requests ORDER BY 1") == [
        ("req-10-00000", 500.0),
        ("req-10-00001", 500.0),
        ("req-10-00002", 500.0),
    ]
    assert (meta["lines_read"].value, meta["rows_ingested"].value) == (4, 3)


@pytest.mark.slow
def test_ingest_a_bad_line_sharing_an_id_loaded_from_another_file_is_found_without_restaging(
    logs, run_hour, query, instance
):
    """Bad lines are looked for among their own files' rows: one whose request_id was loaded from
    another file is found there, and the hour keeps its fast load instead of being staged again."""
    logs.records([record(0), record(1)], name="a.jsonl")
    logs.lines([json.dumps(record(2)), json.dumps(record(0, latency_ms=-1)), json.dumps(record(3))], name="b.jsonl")
    result = run_hour(assets=[llm_requests])
    assert query("SELECT parse_filename(source_file), line_number, reason FROM quarantine") == [
        ("b.jsonl", 2, "invalid_value:latency_ms")
    ]
    assert query("SELECT parse_filename(source_file), request_id FROM llm_requests ORDER BY 2") == [
        ("a.jsonl", "req-10-00000"),
        ("a.jsonl", "req-10-00001"),
        ("b.jsonl", "req-10-00002"),
        ("b.jsonl", "req-10-00003"),
    ]
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert not [m for m in messages if m.startswith("Staging the hour file by file")]


@pytest.mark.slow
def test_ingest_duplicate_across_files_keeps_the_first_in_file_order(logs, run_hour, query):
    logs.records([record(0), record(1)], name="a.jsonl")
    logs.records([record(2), record(0, latency_ms=9.0)], name="b.jsonl")
    logs.records([record(3)], name="c.jsonl")
    meta = ingest(run_hour)
    assert query("SELECT parse_filename(source_file), line_number, reason, raw_line IS NOT NULL FROM quarantine") == [
        ("b.jsonl", 2, "duplicate_request_id", True)
    ]
    assert query("SELECT latency_ms FROM llm_requests WHERE request_id = 'req-10-00000'") == [(500.0,)]
    assert meta["rows_ingested"].value == 4 and meta["lines_read"].value == 5


@pytest.mark.slow
def test_ingest_loads_a_clean_file_exactly_as_one_with_a_bad_line(logs, run_hour, query):
    """Clean files skip line numbering (a faster pass); their rows must not differ in any value."""
    varied = [
        record(0, feedback=5, safety_flags=["pii", "jailbreak"], user_id="u\u00e9", prompt='say "hi"\n\tnow'),
        record(1, status="error", error_type="timeout", input_length=None, output_length=None),
        record(2, timestamp="2026-03-01T12:15:30.123456+02:00", latency_ms=7, feedback=None),
        record(3, timestamp="2026-03-01T10:59:59.999Z", prompt="", response=None, user_id=None),
        {**record(4), "extra": {"nested": [1, 2]}},
    ]
    logs.records(varied)
    ingest(run_hour)
    columns = "* EXCLUDE (source_file) FROM llm_requests ORDER BY request_id"
    fast = query(f"SELECT {columns}")
    logs.lines([json.dumps(r) for r in varied[:2]] + ["{not json"] + [json.dumps(r) for r in varied[2:]])
    ingest(run_hour)
    assert query(f"SELECT {columns}") == fast and len(fast) == 5
    assert query("SELECT line_number, reason FROM quarantine") == [(3, "malformed_json")]


EDGE_LINES = [
    json.dumps(record(1))[:-1] + ",}",  # a trailing comma: both of DuckDB's JSON parsers accept it
    "[" + json.dumps(record(1)) + "]",
    json.dumps(record(1)) + " " + json.dumps(record(7)),
    json.dumps(record(1)) + " trailing",
    json.dumps(record(1)).replace('"request_id"', '"Request_ID"'),
    json.dumps(record(1)).replace('"latency_ms": 500.0', '"latency_ms": 500.0, "latency_ms": -1'),
    json.dumps(record(1)).replace(", ", ",\n"),  # one record over several lines
    "   ",
]


@pytest.mark.parametrize("line", EDGE_LINES)
@pytest.mark.slow
def test_ingest_reads_edge_lines_in_a_clean_file_as_in_one_with_a_bad_line(logs, run_hour, query, line):
    """A clean file's lines are parsed by read_json, a file with bad lines is classified from its
    text: a line one of them accepts and the other rejects must not change what the hour holds."""
    lines = [json.dumps(record(0)), *line.split("\n"), json.dumps(record(2))]
    logs.lines(lines)
    clean = ingest(run_hour)
    rows = query("SELECT * EXCLUDE (source_file) FROM llm_requests ORDER BY request_id")
    held = [(n + 1, reason) for n, reason in quarantine(query)]
    logs.lines(["{oops", *lines])
    with_bad_line = ingest(run_hour)
    assert query("SELECT * EXCLUDE (source_file) FROM llm_requests ORDER BY request_id") == rows
    assert quarantine(query) == [(1, "malformed_json"), *held]
    assert clean["lines_read"].value == len(lines) == clean["rows_ingested"].value + clean["rows_quarantined"].value
    assert with_bad_line["lines_read"].value == len(lines) + 1


@pytest.mark.slow
def test_ingest_a_file_growing_during_the_run_still_reconciles(logs, run_hour, query):
    """A writer still appending to the hour: ingest reads the file more than once, so a count that
    no longer adds up must make it start over on one consistent read, not load lines twice or lose any."""
    initial = 20_000
    path = logs.records([record(i) for i in range(initial)])
    stop = threading.Event()

    def append():
        with path.open("a") as f:
            i = initial
            while not stop.is_set():
                f.write(json.dumps(record(i)) + "\n")
                f.flush()
                i += 1
                time.sleep(0.0005)

    writer = threading.Thread(target=append)
    writer.start()
    try:
        meta = ingest(run_hour)
    finally:
        stop.set()
        writer.join()
    ingested, quarantined = meta["rows_ingested"].value, meta["rows_quarantined"].value
    assert meta["lines_read"].value == ingested + quarantined
    assert ingested >= initial
    assert query("SELECT count(*) = count(DISTINCT request_id) FROM llm_requests") == [(True,)]
    assert query("SELECT count(*) FROM llm_requests") == [(ingested,)]
    assert all(reason == "truncated_last_line" for _, reason in quarantine(query))


@pytest.mark.slow
def test_ingest_reads_windows_line_endings(logs, run_hour, query):
    lines = [json.dumps(record(0)), "{oops", "", json.dumps(record(3))]
    (logs.folder(HOUR) / "windows.jsonl").write_bytes("\r\n".join(lines).encode() + b"\r\n")
    logs.records([record(4)], name="unix.jsonl")
    meta = ingest(run_hour)
    assert quarantine(query) == [(2, "malformed_json"), (3, "empty_line")]
    assert query("SELECT request_id, prompt FROM llm_requests ORDER BY 1") == [
        ("req-10-00000", record(0)["prompt"]),
        ("req-10-00003", record(3)["prompt"]),
        ("req-10-00004", record(4)["prompt"]),
    ]
    assert (meta["lines_read"].value, meta["unreadable_files"].value) == (5, 0)


@pytest.mark.slow
def test_ingest_raw_line_is_capped(logs, run_hour, query):
    logs.lines(["{" + "x" * 10_000])
    ingest(run_hour)
    assert query("SELECT length(raw_line) FROM quarantine") == [(2000,)]


def test_ingest_reads_every_file_of_the_hour_including_gzip(logs, run_hour, query):
    logs.records([record(i) for i in range(3)], name="a.jsonl")
    logs.records([record(i) for i in range(3, 5)], name="b.jsonl.gz")
    logs.records([record(9)], name="ignored.txt")
    meta = ingest(run_hour)
    assert meta["files"].value == 2 and meta["rows_ingested"].value == 5
    assert query("SELECT count(DISTINCT source_file) FROM llm_requests") == [(2,)]


@pytest.mark.parametrize(
    "name, data",
    [
        ("broken.jsonl.gz", b"\x1f\x8b not really gzip"),
        (
            "stray_cr.jsonl",
            b'{"request_id": "a\rb"}\n' + json.dumps(record(9)).encode() + b"\n",
        ),  # DuckDB's reader refuses it
    ],
)
@pytest.mark.slow
def test_ingest_unreadable_file_is_quarantined_and_the_rest_of_the_hour_ingested(logs, run_hour, query, name, data):
    logs.records([record(0), record(1)], name="good.jsonl")
    (logs.folder() / name).write_bytes(data)
    result = run_hour(PARTITION, assets=[llm_requests])
    meta = result.asset_materializations_for_node("llm_requests")[0].metadata
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "quarantine_rate" and not evaluation.passed
    assert meta["rows_ingested"].value == 2
    assert meta["unreadable_files"].value == 1
    ((line, reason),) = query("SELECT line_number, reason FROM quarantine")
    assert line is None and reason.startswith("unreadable_file:")
    assert meta["lines_read"].value == meta["rows_ingested"].value + meta["rows_quarantined"].value


def test_ingest_rerun_replaces_only_its_hour(logs, run_hour, query):
    next_hour = HOUR + timedelta(hours=1)
    logs.records([record(i) for i in range(5)] + [record(3)])
    logs.records([record(i, hour=next_hour) for i in range(4)], hour=next_hour)
    ingest(run_hour)
    ingest(run_hour, "2026-03-01-11:00")
    snapshot = (
        query("SELECT * EXCLUDE (quarantined_at) FROM quarantine"),
        query("SELECT * FROM llm_requests ORDER BY hour, request_id"),
    )
    ingest(run_hour)
    ingest(run_hour)
    assert (
        query("SELECT * EXCLUDE (quarantined_at) FROM quarantine"),
        query("SELECT * FROM llm_requests ORDER BY hour, request_id"),
    ) == snapshot
    assert query("SELECT hour, count(*) FROM llm_requests GROUP BY hour ORDER BY hour") == [
        (HOUR.replace(tzinfo=None), 5),
        (next_hour.replace(tzinfo=None), 4),
    ]


@pytest.mark.slow
def test_ingest_rerun_after_a_file_changed_drops_its_old_rows(logs, run_hour, query):
    logs.records([record(i) for i in range(5)])
    ingest(run_hour)
    logs.records([record(i) for i in range(2)])
    ingest(run_hour)
    assert query("SELECT count(*) FROM llm_requests") == [(2,)]


@pytest.mark.slow
def test_ingest_hour_boundary_and_offsets(logs, run_hour, query):
    """10:59:59.999Z and 12:30+02:00 (=10:30Z) belong to hour 10; 11:00:00Z does not."""
    logs.records(
        [
            record(0, timestamp="2026-03-01T10:59:59.999Z"),
            record(1, timestamp="2026-03-01T12:30:00+02:00"),
            record(2, timestamp="2026-03-01T10:00:00+00:00"),
            record(3, timestamp="2026-03-01T11:00:00Z"),
            record(4, timestamp="2026-03-01T09:59:59.999+00:00"),
        ]
    )
    ingest(run_hour)
    assert [r[0] for r in query("SELECT request_id FROM llm_requests ORDER BY 1")] == [
        "req-10-00000",
        "req-10-00001",
        "req-10-00002",
    ]
    assert query("SELECT line_number, reason FROM quarantine ORDER BY 1") == [
        (4, "timestamp_outside_hour"),
        (5, "timestamp_outside_hour"),
    ]
    assert query('SELECT max("timestamp") FROM llm_requests')[0][0].isoformat() == "2026-03-01T10:59:59.999000"


@pytest.mark.slow
def test_ingest_hour_without_files_materializes_empty(run_hour, query):
    meta = ingest(run_hour)
    assert meta["files"].value == 0 and meta["lines_read"].value == 0
    assert query("SELECT count(*) FROM llm_requests") == [(0,)]


def test_ingest_quarantine_rate_check_fails_above_one_percent(logs, run_hour):
    logs.lines([json.dumps(record(i)) for i in range(98)] + ["{oops", "{oops"])
    result = run_hour(assets=[llm_requests])
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "quarantine_rate" and not evaluation.passed
    assert evaluation.metadata["value"].value == pytest.approx(0.02)
    assert evaluation.metadata["threshold"].value == 0.01
    assert evaluation.metadata["sample_size"].value == 100
    assert evaluation.partition == PARTITION


@pytest.mark.slow
def test_ingest_quarantine_rate_check_passes_at_one_percent(logs, run_hour):
    logs.lines([json.dumps(record(i)) for i in range(99)] + ["{oops"])
    (evaluation,) = run_hour(assets=[llm_requests]).get_asset_check_evaluations()
    assert evaluation.passed
