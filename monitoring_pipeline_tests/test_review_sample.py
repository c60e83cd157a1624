"""The stratified review sample: quotas, priority under the cap, determinism, files and metadata."""

import csv
import hashlib
import json

import pytest

from monitoring_pipeline.defs.ingest.assets import llm_requests
from monitoring_pipeline.defs.review.sample import review_sample
from monitoring_pipeline.defs.review.sampling import STRATA
from monitoring_pipeline_tests.conftest import PARTITION, record

ASSETS = [llm_requests, review_sample]
SAFETY, ERROR, LOW, SLOW = (STRATA.index(s) + 1 for s in ("safety_flag", "error", "low_feedback", "slow"))
STRICT = {
    "sample_rate": 0.0,
    "strata": {"safety_flag": 2, "error": 3, "low_feedback": 2, "slow": 1},
    "min_per_model": 2,
    "max_per_hour": 1000,
}


def crafted_hour() -> list[dict]:
    """100 plain chat-large calls, then disjoint groups: 5 flagged, 6 errors, 4 low ratings,
    one slow call, and a small model with 3 calls."""
    recs = [record(i) for i in range(100)]
    recs += [record(100 + i, safety_flags=["pii"]) for i in range(5)]
    recs += [record(110 + i, status="error", error_type="Timeout") for i in range(6)]
    recs += [record(120 + i, feedback=1 + i % 2) for i in range(4)]
    recs += [record(130, latency_ms=20_000.0)]
    recs += [record(140 + i, model="tiny") for i in range(3)]
    return recs


def sample(query) -> list[tuple]:
    return query("SELECT request_id, reasons, priority, model FROM review_sample ORDER BY priority, request_id")


def test_review_sample_strata_fill_their_quotas(logs, run_hour, query, config_file):
    config_file({"review": STRICT})
    logs.records(crafted_hour())
    run_hour(assets=ASSETS)
    rows = sample(query)
    by_priority = {}
    for _, _, priority, _ in rows:
        by_priority[priority] = by_priority.get(priority, 0) + 1
    assert [by_priority.get(p, 0) for p in (SAFETY, ERROR, LOW, SLOW)] == [2, 3, 2, 1]
    assert {r[0] for r in rows if r[2] == SLOW} == {"req-10-00130"}  # the only call above p99
    assert len([r for r in rows if r[3] == "tiny"]) == 2  # the small model is not starved
    assert all("model_coverage" in r[1] for r in rows if r[3] == "tiny")
    # reasons list every stratum that applies; priority is the strongest
    assert all(r[1][0] == STRATA[r[2] - 1] for r in rows if r[2] <= SLOW)
    assert query("SELECT count(*) FROM review_sample WHERE list_contains(reasons, 'random')") == [(0,)]


@pytest.mark.slow
def test_review_sample_cap_keeps_the_highest_priorities(logs, run_hour, query, config_file):
    config_file({"review": STRICT | {"max_per_hour": 4}})
    logs.records(crafted_hour())
    run_hour(assets=ASSETS)
    assert [r[2] for r in sample(query)] == [SAFETY, SAFETY, ERROR, ERROR]


@pytest.mark.slow
def test_review_sample_base_share_is_the_md5_of_request_id(logs, run_hour, query, config_file):
    config_file(
        {
            "review": {
                "sample_rate": 0.05,
                "strata": {"safety_flag": 0, "error": 0, "low_feedback": 0, "slow": 0},
                "min_per_model": 0,
            }
        }
    )
    logs.records([record(i) for i in range(2000)])
    run_hour(assets=ASSETS)
    expected = {
        f"req-10-{i:05d}"
        for i in range(2000)
        if int(hashlib.md5(f"req-10-{i:05d}".encode()).hexdigest()[:8], 16) / 2**32 < 0.05
    }
    got = {r[0] for r in sample(query)}
    assert got == expected and 60 < len(got) < 140
    assert all(r[1] == ["random"] for r in sample(query))


@pytest.mark.slow
def test_review_sample_reruns_pick_the_same_rows_and_files(logs, run_hour, query, config_file, tmp_path):
    config_file({"review": {"sample_rate": 0.1, "max_per_hour": 30}})
    logs.records(crafted_hour() + [record(200 + i, status="error") for i in range(40)])
    run_hour(assets=ASSETS)
    first = query("SELECT * FROM review_sample ORDER BY request_id")
    folder = tmp_path / "review" / "dt=2026-03-01" / "hour=10"
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    run_hour(assets=ASSETS)
    assert query("SELECT * FROM review_sample ORDER BY request_id") == first
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files
    assert len(first) == 30


@pytest.mark.slow
def test_review_sample_hashes_user_ids_with_the_salt(logs, run_hour, query, config_file, monkeypatch):
    config_file({"review": {"sample_rate": 1.0, "user_id_salt": "from-config"}})
    logs.records([record(i) for i in range(3)] + [record(3, user_id=None)])
    run_hour(assets=ASSETS)
    cols = [r[0] for r in query("SELECT name FROM pragma_table_info('review_sample')")]
    assert "user_id" not in cols and "user_hash" in cols
    expected = hashlib.sha256(b"from-configuser-1").hexdigest()
    assert query("SELECT user_hash FROM review_sample WHERE request_id = 'req-10-00001'") == [(expected,)]
    assert query("SELECT user_hash FROM review_sample WHERE request_id = 'req-10-00003'") == [(None,)]
    monkeypatch.setenv("MONITORING_REVIEW_SALT", "from-env")
    run_hour(assets=ASSETS)
    expected = hashlib.sha256(b"from-envuser-1").hexdigest()
    assert query("SELECT user_hash FROM review_sample WHERE request_id = 'req-10-00001'") == [(expected,)]


def test_review_sample_files_and_ui_preview(logs, run_hour, config_file, tmp_path):
    config_file({"review": STRICT | {"preview_rows": 3}})
    logs.records(crafted_hour()[:100] + [record(100, status="error", prompt="mail me at jane@example.com")])
    result = run_hour(assets=ASSETS)
    folder = tmp_path / "review" / "dt=2026-03-01" / "hour=10"
    with (folder / "review_sample.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    jsonl = [json.loads(line) for line in (folder / "review_sample.jsonl").read_text().splitlines()]
    assert [r["request_id"] for r in rows] == [r["request_id"] for r in jsonl]
    assert rows[0]["request_id"] == "req-10-00100" and rows[0]["reasons"] == "error"
    assert rows[0]["prompt"] == "mail me at [EMAIL]" and jsonl[0]["reasons"] == ["error"]
    assert all(r[c] == "" for r in rows for c in ("verdict", "category", "notes", "reviewer"))
    assert all(r[c] is None for r in jsonl for c in ("verdict", "category", "notes", "reviewer"))
    (mat,) = result.asset_materializations_for_node("review_sample")
    md = mat.metadata
    assert md["rows"].value == len(rows) == 3 and md["stratum/error"].value == 1
    assert md["stratum/model_coverage"].value == 2
    preview = md["preview"].value
    assert preview.count("\n") == 2 + 3 - 1 and "[EMAIL]" in preview and "jane@" not in preview
    assert "| error | 1 |" in md["by_stratum"].value
    assert mat.partition == PARTITION


@pytest.mark.slow
def test_review_sample_replaces_an_unredacted_table_from_before(logs, run_hour, query, tmp_path, config_file):
    import duckdb

    config_file({"review": {"sample_rate": 1.0}})
    with duckdb.connect(str(tmp_path / "monitoring.duckdb")) as conn:
        conn.execute("CREATE TABLE review_sample (hour TIMESTAMP, request_id VARCHAR, user_id VARCHAR, prompt VARCHAR)")
        conn.execute("INSERT INTO review_sample VALUES ('2026-02-01 00:00', 'old', 'alice', 'call +1 555 123 4567')")
    logs.records([record(0, prompt="mail bob@example.com")])
    run_hour(assets=ASSETS)
    assert query("SELECT request_id, prompt FROM review_sample") == [("req-10-00000", "mail [EMAIL]")]
