"""One log contract: the app-side validator and ingest accept and reject the same lines, with the
same reasons; ingest's generated SQL is pinned; the fast path says when it is left."""

import json
import logging
import os
from pathlib import Path

import duckdb
import pytest

from monitoring_pipeline.applog import HourlyJsonlHandler, log_request
from monitoring_pipeline.contract import FIELDS, MAX_COUNT, MAX_LATENCY_MS, validate_record
from monitoring_pipeline.defs.ingest import sql
from monitoring_pipeline.defs.ingest.assets import llm_requests
from monitoring_pipeline_tests.conftest import HOUR, record
from monitoring_pipeline_tests.test_ingest import BAD_LINES, ingest, quarantine

# Reasons the validator cannot give, and why: it sees one Python dict, after the app built it.
NOT_A_RECORD = {
    "malformed_json",  # raw bytes: json.dumps never writes them
    "not_a_json_object",  # a JSON array or scalar: not a dict
    "empty_line",  # no record at all
    "invalid_utf8",  # raw bytes: the handler writes UTF-8
    "timestamp_outside_hour",  # the handler writes each line into its own timestamp's hour
    "duplicate_request_id",  # needs the other lines of the hour
    "duplicate_key:status",  # a dict cannot hold a key twice (json.loads keeps the last value)
}


@pytest.mark.parametrize("line, reason", [case for case in BAD_LINES if case[1] not in NOT_A_RECORD])
def test_contract_validator_gives_the_reason_ingest_gives(line, reason):
    """Each per-record bad line of test_ingest's cases, which ingest quarantines with `reason`, is
    rejected by the app-side validator with the same first problem."""
    assert validate_record(json.loads(line))[:1] == [reason]


def test_contract_every_excluded_reason_has_a_case():
    assert {reason for _, reason in BAD_LINES} >= NOT_A_RECORD


@pytest.mark.slow
def test_contract_validator_and_ingest_accept_the_bounds(logs, run_hour, query):
    edge = [
        record(0, input_tokens=MAX_COUNT, output_tokens=0, latency_ms=MAX_LATENCY_MS, feedback=1),
        record(1, input_length=MAX_COUNT, output_length=0, latency_ms=0, feedback=5),
        record(2, timestamp="2026-03-01 10:30:00.123456789+0000"),
        record(3, timestamp="2026-03-01T05:30-05:00"),
        record(4, timestamp="2026-03-01T10:30:00Z"),
    ]
    assert [validate_record(r) for r in edge] == [[]] * len(edge)
    logs.records(edge)
    meta = ingest(run_hour)
    assert meta["rows_ingested"].value == len(edge) and quarantine(query) == []


@pytest.fixture
def app_logger(logs):
    logger = logging.Logger("test-contract")
    handler = HourlyJsonlHandler(logs.root)
    logger.addHandler(handler)
    yield logger
    handler.close()


def test_log_request_refuses_what_ingest_would_quarantine(app_logger, logs):
    """A naive timestamp string and a token count beyond the contract used to be written, then
    quarantined an hour later."""
    call = {"model": "m", "latency_ms": 1, "input_tokens": 1, "output_tokens": 1, "status": "ok"}
    for overrides, problem in [
        ({"timestamp": "2026-03-01T10:30:00"}, "invalid_value:timestamp"),
        ({"timestamp": "yesterday"}, "invalid_value:timestamp"),
        ({"input_tokens": 2**63}, "invalid_value:input_tokens"),
        ({"latency_ms": MAX_LATENCY_MS + 0.5}, "invalid_value:latency_ms"),
    ]:
        with pytest.raises(ValueError, match=problem):
            log_request(app_logger, **{**call, **overrides})
    assert not list(logs.root.rglob("*.jsonl"))


@pytest.mark.slow
def test_contract_a_nul_character_in_text_is_written_and_ingested(app_logger, logs, run_hour, query):
    """json.dumps writes NUL as the escape \\u0000: valid JSON, six ASCII bytes, so the line reader
    (NUL as its no-delimiter) never sees a NUL byte, and DuckDB stores the decoded NUL in VARCHAR.
    Both paths keep it: the fast one, and the exact one (the file has a duplicate request_id)."""
    for i in range(2):
        log_request(app_logger, request_id=f"r{i}", model="m", latency_ms=1, input_tokens=1, output_tokens=1,
                    status="ok", prompt="a\u0000b", timestamp=HOUR)  # fmt: skip
    meta = ingest(run_hour)
    assert meta["exact_path_files"].value == 0
    assert query("SELECT request_id, prompt FROM llm_requests ORDER BY 1") == [("r0", "a\x00b"), ("r1", "a\x00b")]
    log_request(app_logger, request_id="r0", model="m", latency_ms=1, input_tokens=1, output_tokens=1,
                status="ok", prompt="a\u0000b", timestamp=HOUR)  # fmt: skip
    meta = ingest(run_hour)
    assert meta["exact_path_files"].value == 1
    assert query("SELECT request_id, prompt FROM llm_requests ORDER BY 1") == [("r0", "a\x00b"), ("r1", "a\x00b")]
    assert quarantine(query) == [(3, "duplicate_request_id")]


def test_contract_every_field_has_a_column_in_llm_requests(tmp_path):
    """Adding a field is one line in contract.FIELDS plus its column in the DDL (inserts go BY NAME)."""
    with duckdb.connect(str(tmp_path / "t.duckdb")) as conn:
        conn.execute(sql.LLM_REQUESTS_DDL)
        columns = {name for (name,) in conn.execute("SELECT name FROM pragma_table_info('llm_requests')").fetchall()}
    assert {f.name for f in FIELDS} <= columns


def _warnings(instance, result) -> list[str]:
    return [e.user_message for e in instance.all_logs(result.run_id) if e.level == logging.WARNING]


def test_ingest_clean_hour_takes_the_fast_path(logs, run_hour, instance):
    logs.records([record(i) for i in range(3)], name="a.jsonl")
    logs.lines([json.dumps(record(3)), "{oops", json.dumps(record(4))], name="b.jsonl")
    result = run_hour(assets=[llm_requests])
    meta = result.asset_materializations_for_node("llm_requests")[0].metadata
    assert (meta["exact_path_files"].value, meta["fast_path_fallback"].value) == (0, 0)
    assert meta["fallback_reason"].value == ""
    assert not [m for m in _warnings(instance, result) if "fast path" in m]


@pytest.mark.slow
def test_ingest_a_file_needing_exact_numbers_says_so(logs, run_hour, instance):
    logs.records([record(0), record(1)], name="a.jsonl")
    logs.lines([json.dumps(record(2)), b'{"bad": "\xff"}'], name="b.jsonl")  # undecodable: exact numbering
    result = run_hour(assets=[llm_requests])
    meta = result.asset_materializations_for_node("llm_requests")[0].metadata
    assert (meta["exact_path_files"].value, meta["fast_path_fallback"].value) == (1, 0)


@pytest.mark.slow
def test_ingest_leaving_the_fast_path_is_a_warning_and_in_the_metadata(logs, run_hour, instance):
    logs.records([record(0), record(1)], name="good.jsonl")
    (logs.folder() / "broken.jsonl.gz").write_bytes(b"\x1f\x8b not really gzip")  # fails the fast pass
    result = run_hour(assets=[llm_requests])
    meta = result.asset_materializations_for_node("llm_requests")[0].metadata
    assert meta["fast_path_fallback"].value == 1
    assert meta["fallback_reason"].value  # DuckDB's error, first line
    assert meta["exact_path_files"].value == 1  # good.jsonl; broken.jsonl.gz is quarantined whole
    (warning,) = [m for m in _warnings(instance, result) if "off the fast path" in m]
    assert meta["fallback_reason"].value in warning


# ---- the generated SQL, pinned: a change to it shows in review as a diff of this file.
# Regenerate after an intended change with:
#   UPDATE_SNAPSHOTS=1 .venv/bin/pytest -q monitoring_pipeline_tests/test_contract.py -k rendered
SNAPSHOT = Path(__file__).parent / "snapshots" / "ingest_sql.txt"


def _rendered() -> str:
    statements = {name: value for name, value in vars(sql).items() if name.isupper() and isinstance(value, str)}
    for name, source in (("SCAN_LINES", sql.SCAN_LINES), ("NUMBERED_LINES", sql.NUMBERED_LINES)):
        statements[f"stage({name})"] = sql.stage(source)
        statements[f"fill_duplicate_lines({name})"] = sql.fill_duplicate_lines(source)
    statements["insert_valid_lines(strict, lenient)"] = sql.insert_valid_lines(strict=True, lenient=True)
    return "".join(f"-- {name}\n{text.strip()}\n\n" for name, text in sorted(statements.items()))


def test_ingest_rendered_sql_matches_the_snapshot():
    rendered = _rendered()
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(rendered)
    assert rendered == SNAPSHOT.read_text(), "generated SQL changed: review, then regenerate (see above)"
    assert "v_latency_ms" in rendered and "v_4" not in rendered


@pytest.mark.slow
def test_ingest_adds_the_column_of_a_field_the_table_predates(logs, run_hour, query, tmp_path):
    """A warehouse created before a field joined the contract gets its column on the next run."""
    with duckdb.connect(str(tmp_path / "monitoring.duckdb")) as conn:
        conn.execute(sql.LLM_REQUESTS_DDL.replace("response VARCHAR USING COMPRESSION zstd,", ""))
        assert "response" not in {
            c for (c,) in conn.execute("SELECT name FROM pragma_table_info('llm_requests')").fetchall()
        }
    logs.records([record(0, response="hi there")])
    ingest(run_hour)
    assert query("SELECT request_id, response FROM llm_requests") == [("req-10-00000", "hi there")]
