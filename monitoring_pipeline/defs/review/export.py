"""The hour's sample as reviewer files: CSV and JSONL with the LLM judge's verdict and reason (when
it has judged the hour) beside the empty verdict columns, so a reviewer sees what the judge said."""

import os
from pathlib import Path

import duckdb

from monitoring_pipeline.defs.review.judge_sql import JUDGE_VERDICTS_DDL

VERDICT_COLUMNS = ("verdict", "category", "notes", "reviewer")

# The judge's word per request: bad if any rubric says bad, good if every judged rubric says good;
# the reasons prefixed by their rubric. Errors and unjudged requests leave both empty.
JUDGE_COLUMNS = """
SELECT request_id,
       CASE WHEN bool_or(verdict = 'bad') THEN 'bad' WHEN count(verdict) > 0 THEN 'good' END AS judge_verdict,
       string_agg(rubric || ': ' || verdict || ' — ' || coalesce(reason, ''), '; ' ORDER BY rubric) AS judge_reason
FROM judge_verdicts WHERE hour = $hour AND verdict IS NOT NULL GROUP BY request_id
"""

# What a reviewer sees: why it was picked, the redacted texts, the judge's verdict, then the
# columns to fill in.
EXPORT_QUERY = """
SELECT request_id, strftime(hour, '%Y-%m-%dT%H:%M:%SZ') AS hour, {reasons} AS reasons, model, status,
       error_type, latency_ms, feedback, {flags} AS safety_flags, user_hash, prompt, response,
       j.judge_verdict, j.judge_reason,
       NULL::VARCHAR AS verdict, NULL::VARCHAR AS category, NULL::VARCHAR AS notes, NULL::VARCHAR AS reviewer
FROM review_sample LEFT JOIN ({judge}) j USING (request_id)
WHERE hour = $hour ORDER BY priority, request_id
"""


def hour_dir(output_dir: str, partition_key: str) -> Path:
    """<output_dir>/dt=YYYY-MM-DD/hour=HH/, beside the logs' layout."""
    return Path(output_dir) / f"dt={partition_key[:10]}" / f"hour={partition_key[11:13]}"


def export_hour(conn: duckdb.DuckDBPyConnection, hour, folder: Path) -> dict[str, Path]:
    """Write review_sample.csv (lists joined by ';') and review_sample.jsonl (lists as arrays).
    Each is written to a temp name then renamed, so a reviewer never opens a half-written file."""
    folder.mkdir(parents=True, exist_ok=True)
    conn.execute(JUDGE_VERDICTS_DDL)
    paths = {}
    for fmt, reasons, flags in (
        ("csv", "array_to_string(reasons, ';')", "array_to_string(safety_flags, ';')"),
        ("json", "reasons", "safety_flags"),
    ):
        path = folder / f"review_sample.{'csv' if fmt == 'csv' else 'jsonl'}"
        tmp = path.with_name(path.name + ".tmp")
        query = EXPORT_QUERY.format(reasons=reasons, flags=flags, judge=JUDGE_COLUMNS)
        options = "(FORMAT csv, HEADER true)" if fmt == "csv" else "(FORMAT json)"
        conn.execute(f"COPY ({query}) TO $path {options}", {"hour": hour, "path": str(tmp)})
        os.replace(tmp, path)
        paths[fmt] = path
    return paths
