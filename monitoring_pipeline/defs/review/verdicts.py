"""Reviewer verdict files -> review_verdicts (keyed by request_id) and review_verdict_rejects.

Each file in the inbox is staged row by row with DuckDB's own readers (read_csv; JSONL read line by
line so one bad line cannot hide the others), then validated and merged in set-based SQL. Files are
applied oldest first, so a later file's verdict for the same request wins. A verdict only changes
when its content does: re-dropping a file is a no-op.
"""

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from monitoring_pipeline.lib.db import one, transaction

VERDICT_FILE_PATTERNS = ("*.csv", "*.jsonl")
CATEGORY_PATTERN = "^[a-z0-9_\\-]{1,40}$"

REVIEW_VERDICTS_DDL = """
CREATE TABLE IF NOT EXISTS review_verdicts (
    request_id VARCHAR PRIMARY KEY,
    hour TIMESTAMP NOT NULL,            -- the sampled request's hour
    model VARCHAR NOT NULL,
    verdict VARCHAR NOT NULL,           -- good | bad
    category VARCHAR,                   -- lower case, e.g. hallucination, tone, refusal
    notes VARCHAR,                      -- redacted like the sample
    reviewer VARCHAR,
    source_file VARCHAR NOT NULL,       -- the file that last changed this verdict
    source_row BIGINT NOT NULL,
    loaded_at TIMESTAMP NOT NULL
)"""

REJECTS_DDL = """
CREATE TABLE IF NOT EXISTS review_verdict_rejects (
    source_file VARCHAR NOT NULL,
    source_row BIGINT,                  -- data row (1 = first row after a CSV header); NULL: whole file
    request_id VARCHAR,
    reason VARCHAR NOT NULL,
    rejected_at TIMESTAMP NOT NULL
)"""

STAGE_DDL = """
CREATE OR REPLACE TEMP TABLE _verdict_rows (
    file_order INTEGER, source_file VARCHAR, source_row BIGINT, request_id VARCHAR, verdict VARCHAR,
    category VARCHAR, notes VARCHAR, reviewer VARCHAR, problem VARCHAR)"""

VERDICT_FIELDS = ("request_id", "verdict", "category", "notes", "reviewer")
READ_CSV = """read_csv($path, all_varchar = true, header = true, store_rejects = true,
                       rejects_table = '_csv_rejects', rejects_scan = '_csv_reject_scans')"""
# {columns}: each of VERDICT_FIELDS, or NULL when the file has no such column (fixed names only).
STAGE_CSV = (
    """
INSERT INTO _verdict_rows
SELECT $order, $path, row_number() OVER (), nullif(trim(request_id), ''), lower(trim(verdict)),
       lower(trim(category)), notes, trim(reviewer), NULL
FROM (SELECT {columns} FROM """
    + READ_CSV
    + """)
"""
)
# row_number() counts only the rows the reader kept; the j-th rejected row (data row L_j) has
# L_j - j kept rows before it, so kept row k is data row k + #{j : L_j - j < k}.
RENUMBER_CSV = """
UPDATE _verdict_rows SET source_row = source_row + (
    SELECT count(*) FROM (SELECT line - 1 AS l, row_number() OVER (ORDER BY line) AS j
                          FROM (SELECT DISTINCT line FROM _csv_rejects))
    WHERE l - j < source_row)
WHERE source_file = $path AND problem IS NULL
"""
CSV_REJECTS = """
INSERT INTO _verdict_rows
SELECT $order, $path, line - 1, NULL, NULL, NULL, NULL, NULL,
       'malformed CSV line ' || line || ': ' || coalesce(error_message, error_type)
FROM _csv_rejects
"""

# JSONL: one VARCHAR per line (NUL never occurs in text files), then parsed field by field.
STAGE_JSONL = """
INSERT INTO _verdict_rows
WITH lines AS (
    SELECT row_number() OVER () AS n, line
    FROM read_csv($path, columns = {'line': 'VARCHAR'}, delim = chr(0), quote = '', escape = '',
                  header = false, auto_detect = false, new_line = '\\n')
)
SELECT $order, $path, n,
       CASE WHEN json_valid(line) THEN nullif(trim(line ->> 'request_id'), '') END,
       CASE WHEN json_valid(line) THEN lower(trim(line ->> 'verdict')) END,
       CASE WHEN json_valid(line) THEN lower(trim(line ->> 'category')) END,
       CASE WHEN json_valid(line) THEN line ->> 'notes' END,
       CASE WHEN json_valid(line) THEN trim(line ->> 'reviewer') END,
       CASE WHEN NOT json_valid(line) THEN 'not valid JSON'
            WHEN json_type(line) <> 'OBJECT' THEN 'not a JSON object' END
FROM lines WHERE trim(line) <> ''
"""

# Blank verdict = not reviewed yet: skipped, neither loaded nor rejected.
CLASSIFY = """
CREATE OR REPLACE TEMP TABLE _verdict_checked AS
SELECT v.*, s.hour, s.model,
       CASE WHEN problem IS NOT NULL THEN problem
            WHEN v.request_id IS NULL THEN 'missing request_id'
            WHEN verdict NOT IN ('good', 'bad') THEN 'verdict must be good or bad, got ''' || left(verdict, 40) || ''''
            WHEN coalesce(category, '') <> '' AND NOT regexp_full_match(category, $category_pattern)
                THEN 'category must be a short lower-case word (letters, digits, _ or -)'
            WHEN s.request_id IS NULL THEN 'request_id ' || left(v.request_id, 80) || ' is not in review_sample'
            WHEN dup_first IS NOT NULL THEN 'duplicate request_id in this file (first at row ' || dup_first || ')'
       END AS reason
FROM (
    SELECT *, CASE WHEN row_number() OVER w > 1 THEN min(source_row) OVER w END AS dup_first
    FROM _verdict_rows
    WHERE problem IS NOT NULL OR coalesce(verdict, '') <> ''
    WINDOW w AS (PARTITION BY source_file, request_id ORDER BY source_row)
) v
LEFT JOIN (SELECT DISTINCT ON (request_id) request_id, hour, model FROM review_sample) s USING (request_id)
"""

# The newest file's row per request; changed only if its content differs from what is stored.
CHANGES = """
CREATE OR REPLACE TEMP TABLE _verdict_changes AS
SELECT c.request_id, c.hour, c.model, c.verdict, nullif(c.category, '') AS category,
       redact(nullif(c.notes, '')) AS notes, nullif(c.reviewer, '') AS reviewer, c.source_file, c.source_row,
       r.request_id IS NULL AS is_new
FROM (SELECT * FROM _verdict_checked WHERE reason IS NULL
      QUALIFY row_number() OVER (PARTITION BY request_id ORDER BY file_order DESC, source_row DESC) = 1) c
LEFT JOIN review_verdicts r USING (request_id)
WHERE r.request_id IS NULL
   OR (r.verdict, r.category, r.notes, r.reviewer) IS DISTINCT FROM
      (c.verdict, nullif(c.category, ''), redact(nullif(c.notes, '')), nullif(c.reviewer, ''))
"""
UPSERT = """
INSERT INTO review_verdicts
SELECT request_id, hour, model, verdict, category, notes, reviewer, source_file, source_row, now()::TIMESTAMP
FROM _verdict_changes
ON CONFLICT (request_id) DO UPDATE SET
    hour = excluded.hour, model = excluded.model, verdict = excluded.verdict, category = excluded.category,
    notes = excluded.notes, reviewer = excluded.reviewer, source_file = excluded.source_file,
    source_row = excluded.source_row, loaded_at = excluded.loaded_at
"""
REPLACE_REJECTS = [
    "DELETE FROM review_verdict_rejects WHERE source_file IN (SELECT unnest($files))",
    """INSERT INTO review_verdict_rejects
       SELECT source_file, source_row, request_id, reason, now()::TIMESTAMP FROM _verdict_checked
       WHERE reason IS NOT NULL ORDER BY file_order, source_row""",
]


@dataclass
class LoadReport:
    files: int = 0
    rows: int = 0  # non-blank verdict rows read
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    rejects: list[tuple] = field(default_factory=list)  # (file, row, reason)


def inbox_files(inbox: str | Path) -> list[Path]:
    """Verdict files in the inbox (any depth), oldest first: later files override earlier ones."""
    root = Path(inbox)
    if not root.is_dir():
        return []
    files = {p for pattern in VERDICT_FILE_PATTERNS for p in root.rglob(pattern) if p.is_file()}
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, str(p)))


def _stage_csv(conn: duckdb.DuckDBPyConnection, params: dict) -> None:
    path_only = {"path": params["path"]}
    header = {d[0] for d in conn.execute(f"DESCRIBE SELECT * FROM {READ_CSV}", path_only).fetchall()}
    missing = [c for c in ("request_id", "verdict") if c not in header]
    if missing:
        raise ValueError(f"missing column(s) {', '.join(missing)} in the header")
    columns = ", ".join(f'"{c}"' if c in header else f"NULL AS {c}" for c in VERDICT_FIELDS)
    for table in ("_csv_rejects", "_csv_reject_scans"):  # they accumulate across scans otherwise
        conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(STAGE_CSV.format(columns=columns), params)
    conn.execute(RENUMBER_CSV, path_only)
    conn.execute(CSV_REJECTS, params)


def _stage(conn: duckdb.DuckDBPyConnection, order: int, path: Path) -> None:
    params = {"order": order, "path": str(path)}
    try:
        if path.suffix == ".csv":
            _stage_csv(conn, params)
        else:
            conn.execute(STAGE_JSONL, params)
    except (duckdb.Error, ValueError) as err:
        conn.execute("DELETE FROM _verdict_rows WHERE source_file = $path", {"path": str(path)})
        conn.execute(
            "INSERT INTO _verdict_rows VALUES ($order, $path, NULL, NULL, NULL, NULL, NULL, NULL, $why)",
            params | {"why": f"unreadable file: {str(err).splitlines()[0][:300]}"},
        )


def load_verdicts(conn: duckdb.DuckDBPyConnection, files: list[Path]) -> LoadReport:
    """Stage, validate and merge `files` (in the order given). The caller installs redact()."""
    conn.execute(REVIEW_VERDICTS_DDL)
    conn.execute(REJECTS_DDL)
    conn.execute(STAGE_DDL)
    for order, path in enumerate(files):
        _stage(conn, order, path)
    conn.execute(CLASSIFY, {"category_pattern": CATEGORY_PATTERN})
    conn.execute(CHANGES)
    report = LoadReport(files=len(files))
    report.rows, report.new, report.changed = one(
        conn,
        "SELECT (SELECT count(*) FROM _verdict_checked), (SELECT count(*) FILTER (is_new) FROM _verdict_changes), "
        "(SELECT count(*) FILTER (NOT is_new) FROM _verdict_changes)",
    )
    report.rejects = conn.execute(
        "SELECT source_file, source_row, reason FROM _verdict_checked WHERE reason IS NOT NULL "
        "ORDER BY file_order, source_row"
    ).fetchall()
    report.unchanged = report.rows - len(report.rejects) - report.new - report.changed
    with transaction(conn):
        conn.execute(UPSERT)
        for sql in REPLACE_REJECTS:
            conn.execute(sql, {"files": [str(p) for p in files]} if "$files" in sql else None)
    return report
