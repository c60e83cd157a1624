"""Each hour's sample as reviewer files: CSV and JSONL with the LLM judge's verdict and reason (when
it has judged the hour) beside the empty verdict columns, so a reviewer sees what the judge said."""

import os
from pathlib import Path

import duckdb

from monitoring_pipeline.defs.review.judge_sql import JUDGE_VERDICTS_DDL
from monitoring_pipeline.lib.hourly import Hours

VERDICT_COLUMNS = ("verdict", "category", "notes", "reviewer")

# The judge's word per request of the window's hours: bad if any rubric says bad, good if every
# judged rubric says good; the reasons prefixed by their rubric. Errors and unjudged requests leave
# both empty. Join it USING (hour, request_id).
JUDGE_COLUMNS = """
SELECT hour, request_id,
       CASE WHEN bool_or(verdict = 'bad') THEN 'bad' WHEN count(verdict) > 0 THEN 'good' END AS judge_verdict,
       string_agg(rubric || ': ' || verdict || ' — ' || coalesce(reason, ''), '; ' ORDER BY rubric) AS judge_reason
FROM judge_verdicts WHERE hour >= $start AND hour < $end AND verdict IS NOT NULL GROUP BY hour, request_id
"""

# The window's sample with the judge's columns, joined once for all its hours; each hour's files
# are then a cheap COPY of its rows.
EXPORT_ROWS = f"""
CREATE OR REPLACE TEMP TABLE _export AS
SELECT * FROM review_sample LEFT JOIN ({JUDGE_COLUMNS}) j USING (hour, request_id)
WHERE hour >= $start AND hour < $end
"""

# What a reviewer sees: why it was picked, the redacted texts, the judge's verdict, then the
# columns to fill in.
EXPORT_QUERY = """
SELECT request_id, strftime(hour, '%Y-%m-%dT%H:%M:%SZ') AS hour, {reasons} AS reasons, model, status,
       error_type, latency_ms, feedback, {flags} AS safety_flags, user_hash, prompt, response,
       judge_verdict, judge_reason,
       NULL::VARCHAR AS verdict, NULL::VARCHAR AS category, NULL::VARCHAR AS notes, NULL::VARCHAR AS reviewer
FROM _export WHERE hour = $hour ORDER BY priority, request_id
"""
FORMATS = {  # file format: (COPY options, reasons, safety_flags); CSV joins the lists by ';'
    "csv": ("(FORMAT csv, HEADER true)", "array_to_string(reasons, ';')", "array_to_string(safety_flags, ';')"),
    "json": ("(FORMAT json)", "reasons", "safety_flags"),
}


def hour_dir(output_dir: str, partition_key: str) -> Path:
    """<output_dir>/dt=YYYY-MM-DD/hour=HH/, beside the logs' layout."""
    return Path(output_dir) / f"dt={partition_key[:10]}" / f"hour={partition_key[11:13]}"


def hour_files(output_dir: str, partition_key: str) -> dict[str, Path]:
    """The hour's review_sample.csv and review_sample.jsonl, by format."""
    folder = hour_dir(output_dir, partition_key)
    return {"csv": folder / "review_sample.csv", "json": folder / "review_sample.jsonl"}


def export_hours(conn: duckdb.DuckDBPyConnection, hours: Hours, output_dir: str) -> dict[str, dict[str, Path]]:
    """Write each hour's review_sample.csv (lists joined by ';') and review_sample.jsonl (lists as
    arrays); returns their paths by partition key. Each is written to a temp name then renamed, so a
    reviewer never opens a half-written file."""
    conn.execute(JUDGE_VERDICTS_DDL)
    conn.execute(EXPORT_ROWS, hours.window)
    paths = {}
    for key, hour in hours:
        paths[key] = hour_files(output_dir, key)
        paths[key]["csv"].parent.mkdir(parents=True, exist_ok=True)
        for fmt, (options, reasons, flags) in FORMATS.items():
            path = paths[key][fmt]
            tmp = path.with_name(path.name + ".tmp")
            query = EXPORT_QUERY.format(reasons=reasons, flags=flags)
            conn.execute(f"COPY ({query}) TO $path {options}", {"hour": hour, "path": str(tmp)})
            os.replace(tmp, path)
    conn.execute("DROP TABLE _export")
    return paths
