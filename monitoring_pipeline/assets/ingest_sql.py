"""The SQL that turns an hour's log lines into llm_requests rows and quarantine rows.

Every line is read as one VARCHAR (never through read_json's ignore_errors, which turns a bad
line into a silent all-NULL row), then classified in one pass: each line gets either a NULL
reason (valid) or the first rule it breaks. Lines DuckDB cannot even decode (bad UTF-8, NUL
bytes) land in the CSV reader's rejects table with their line number and join the same stream.
"""

from monitoring_pipeline.schema import FIELDS, RAW_LINE_CAP

LLM_REQUESTS_DDL = """
CREATE TABLE IF NOT EXISTS llm_requests (
    hour TIMESTAMP NOT NULL,            -- partition: the UTC hour the line was logged in
    request_id VARCHAR NOT NULL,
    "timestamp" TIMESTAMP NOT NULL,     -- UTC
    model VARCHAR NOT NULL,
    latency_ms DOUBLE NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    status VARCHAR NOT NULL,
    input_length BIGINT,
    output_length BIGINT,
    user_id VARCHAR,
    error_type VARCHAR,
    feedback TINYINT,
    safety_flags VARCHAR[] NOT NULL,
    prompt VARCHAR,
    response VARCHAR,
    source_file VARCHAR NOT NULL
)"""

QUARANTINE_DDL = """
CREATE TABLE IF NOT EXISTS quarantine (
    hour TIMESTAMP NOT NULL,
    source_file VARCHAR NOT NULL,
    line_number BIGINT,                 -- NULL when the whole file was unreadable
    reason VARCHAR NOT NULL,
    raw_line VARCHAR,                   -- capped
    quarantined_at TIMESTAMP NOT NULL
)"""

# Lines as VARCHAR: NUL never occurs in valid JSON text, so it is a safe "no delimiter".
READ_LINES = """
CREATE OR REPLACE TEMP TABLE _lines AS
SELECT filename AS source_file, row_number() OVER () AS seq, line
FROM read_csv($files, columns = {'line': 'VARCHAR'}, delim = chr(0), quote = '', escape = '',
              header = false, auto_detect = false, new_line = '\\n', filename = true,
              store_rejects = true, rejects_table = '_rejects', rejects_scan = '_reject_scans')
"""

# row_number() above counts only the lines the reader kept. The j-th rejected line of a file
# (at line L_j) has L_j - j kept lines before it, so a kept line with ordinal k sits at
# k + #{j : L_j - j < k}.
NUMBER_LINES = """
CREATE OR REPLACE TEMP TABLE _numbered AS
WITH kept AS (
    SELECT source_file, line,
           seq - min(seq) OVER (PARTITION BY source_file) + 1 AS k
    FROM _lines
),
rejected AS (
    SELECT s.file_path AS source_file, e.line AS line_number, e.csv_line AS line, e.error_type,
           e.line - row_number() OVER (PARTITION BY s.file_path ORDER BY e.line) AS kept_before
    FROM _rejects e JOIN _reject_scans s USING (scan_id, file_id)
)
SELECT source_file, k + (SELECT count(*) FROM rejected r
                         WHERE r.source_file = kept.source_file AND r.kept_before < kept.k) AS line_number,
       line, NULL::VARCHAR AS read_error
FROM kept
UNION ALL
SELECT source_file, line_number, line,
       CASE error_type WHEN 'INVALID ENCODING' THEN 'invalid_utf8'
                       ELSE 'unreadable_line:' || lower(replace(error_type, ' ', '_')) END
FROM rejected
"""


def _path(name: str) -> str:
    return f"$.{name}"


def _type_ok(kind: str, j: str) -> str:
    return {
        "string": f"json_type({j}) = 'VARCHAR'",
        "timestamp": f"json_type({j}) = 'VARCHAR'",
        "status": f"json_type({j}) = 'VARCHAR'",
        "number": f"json_type({j}) IN ('BIGINT', 'UBIGINT', 'DOUBLE')",
        "integer": f"json_type({j}) IN ('BIGINT', 'UBIGINT') AND try_cast({j} AS BIGINT) IS NOT NULL",
        "stars": f"json_type({j}) IN ('BIGINT', 'UBIGINT')",
        "string_list": f"json_type({j}) = 'ARRAY' AND list_bool_and(list_transform(coalesce(json_type({j}, '$[*]'), []), lambda t: t = 'VARCHAR')) IS NOT FALSE",
    }[kind]


def _value_ok(field, j: str) -> str | None:
    s = f"({j} ->> '$')"
    return {
        "timestamp": f"regexp_matches({s}, '(Z|z|[+-]\\d\\d:?\\d\\d)$') AND try_cast({s} AS TIMESTAMPTZ) IS NOT NULL",
        "number": f"try_cast({j} AS DOUBLE) >= 0",
        "integer": f"try_cast({j} AS BIGINT) >= 0",
        "stars": f"try_cast({j} AS BIGINT) BETWEEN 1 AND 5",
        "status": f"{s} IN ('ok', 'error')",
        "string": f"{s} <> ''" if field.name == "request_id" else None,
    }.get(field.kind)


def _present(i: int) -> str:
    """Opens a guard: the test after it runs only where field i holds a non-null value."""
    return f"CASE WHEN v[{i}] IS NOT NULL AND json_type(v[{i}]) <> 'NULL'"


def _reason_cases() -> str:
    """One WHEN per rule, in the order a reader fixing the line would want them."""
    cases = []
    for i, f in enumerate(FIELDS, start=1):
        if f.required:
            cases.append(f"WHEN v[{i}] IS NULL OR json_type(v[{i}]) = 'NULL' THEN 'missing_field:{f.name}'")
    for i, f in enumerate(FIELDS, start=1):
        cases.append(f"WHEN {_present(i)} THEN NOT ({_type_ok(f.kind, f'v[{i}]')}) ELSE false END THEN 'wrong_type:{f.name}'")
    for i, f in enumerate(FIELDS, start=1):
        check = _value_ok(f, f"v[{i}]")
        if check:
            cases.append(f"WHEN {_present(i)} THEN NOT ({check}) ELSE false END THEN 'invalid_value:{f.name}'")
    return "\n            ".join(cases)


def _col(name: str) -> str:
    return f"v[{[f.name for f in FIELDS].index(name) + 1}]"


CLASSIFY = f"""
CREATE OR REPLACE TEMP TABLE _classified AS
WITH parsed AS (
    SELECT *, CASE WHEN is_object THEN json_extract(line, {[_path(f.name) for f in FIELDS]!r}) END AS v
    FROM (
        -- CASE, not AND: DuckDB may evaluate both sides of an AND, and json_type raises on bad JSON
        SELECT *, CASE WHEN json_valid(line) THEN json_type(line) = 'OBJECT' ELSE false END AS is_object,
               line_number = max(line_number) OVER (PARTITION BY source_file) AS is_last
        FROM _numbered
    )
),
checked AS (
    SELECT *, CASE
            WHEN read_error IS NOT NULL THEN read_error
            WHEN line IS NULL OR trim(line) = '' THEN 'empty_line'
            WHEN NOT json_valid(line) AND is_last THEN 'truncated_last_line'
            WHEN NOT json_valid(line) THEN 'malformed_json'
            WHEN NOT is_object THEN 'not_a_json_object'
            {_reason_cases()}
        END AS rule_broken
    FROM parsed
),
typed AS (
    SELECT *, CASE WHEN rule_broken IS NULL THEN
                   ({_col('timestamp')} ->> '$')::TIMESTAMPTZ AT TIME ZONE 'UTC' END AS ts_utc
    FROM checked
)
SELECT *, CASE
        WHEN rule_broken IS NOT NULL THEN rule_broken
        WHEN ts_utc < $hour OR ts_utc >= $hour + INTERVAL 1 HOUR THEN 'timestamp_outside_hour'
        WHEN row_number() OVER (PARTITION BY {_col('request_id')} ->> '$',
                                rule_broken IS NULL AND ts_utc >= $hour AND ts_utc < $hour + INTERVAL 1 HOUR
                                ORDER BY source_file, line_number) > 1 THEN 'duplicate_request_id'
    END AS reason
FROM typed
"""

INSERT_REQUESTS = f"""
INSERT INTO llm_requests
SELECT $hour, {_col('request_id')} ->> '$', ts_utc, {_col('model')} ->> '$',
       {_col('latency_ms')}::DOUBLE, {_col('input_tokens')}::BIGINT, {_col('output_tokens')}::BIGINT,
       {_col('status')} ->> '$', try_cast({_col('input_length')} AS BIGINT),
       try_cast({_col('output_length')} AS BIGINT), {_col('user_id')} ->> '$',
       {_col('error_type')} ->> '$', try_cast({_col('feedback')} AS TINYINT),
       coalesce(try_cast({_col('safety_flags')} AS VARCHAR[]), []),
       {_col('prompt')} ->> '$', {_col('response')} ->> '$', source_file
FROM _classified WHERE reason IS NULL
ORDER BY source_file, line_number
"""

INSERT_QUARANTINE = f"""
INSERT INTO quarantine
SELECT $hour, source_file, line_number, reason, left(line, {RAW_LINE_CAP}), now()::TIMESTAMP
FROM _classified WHERE reason IS NOT NULL
"""
