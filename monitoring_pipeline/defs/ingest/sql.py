"""The SQL that turns the log lines of a run's hours into llm_requests rows and quarantine rows.

Every line is classified in one pass: it gets either a NULL reason (valid) or the first rule it
breaks. Two parsers feed that classification (classified()): read_json with every field as a JSON
column, for the fast pass, and each line read as one VARCHAR and parsed with json_extract, for
the lines that need a reason and a line number. read_json's ignore_errors turns a bad line into
an all-NULL row with no text, so it never decides what a bad line is: it only loads valid ones.
Lines DuckDB cannot even decode (bad UTF-8, NUL bytes) land in the CSV reader's rejects table
with their line number and join the same stream.

A run reads the files of all its hours at once (one hour, or a backfill's range of them): LISTING
holds each file with the hour whose folder it was listed in, every line takes its hour from its
file, and the statements cover the run's window ($start to $end) with rules that stay per hour
(a timestamp outside its file's hour, a request_id seen twice in the same hour).

INSERT_VALID_LINES loads the valid lines of all files at once, in parallel and unnumbered;
FILE_STATUS then compares each file's lines with its rows. A file's bad lines are classified
again from their text and numbered by their hash (BAD_LINES, LOCATE_BAD_LINES); a file with an
undecodable line or a duplicate request_id is staged with exact line numbers instead (stage()),
which the decoding offsets and the first-wins rule need. Both parsers are DuckDB's yyjson and
give the same JSON text per field (test_ingest's edge lines pin this). Were they ever to disagree
on a line of a file that also has bad lines, its counts would not add up, and the hour is then
staged exactly (in a range run, after the hours are replaced one by one: see load.replace_hours).
"""

from monitoring_pipeline.contract import FIELDS, RAW_LINE_CAP, TIMESTAMP_FORMAT, Field
from monitoring_pipeline.lib.db import quote_literal

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
    -- zstd, not DuckDB's default for strings this short (FSST): a third of the bytes, and an hour
    -- of a million requests loads ~2 s faster. Written in bulk, read back for a few rows.
    prompt VARCHAR USING COMPRESSION zstd,
    response VARCHAR USING COMPRESSION zstd,
    source_file VARCHAR NOT NULL,
    finish_reason VARCHAR,
    output_type VARCHAR
)"""
# A field added to the contract after a warehouse's table was created gets its column appended
# (inserts go BY NAME, so its place does not matter). Required fields were there from the start.
SQL_TYPES = {
    "string": "VARCHAR",
    "timestamp": "TIMESTAMP",
    "number": "DOUBLE",
    "integer": "BIGINT",
    "string_list": "VARCHAR[]",
}
MISSING_FIELD_COLUMNS = """
SELECT name FROM unnest($fields) AS f(name)
WHERE name NOT IN (SELECT column_name FROM duckdb_columns() WHERE table_name = 'llm_requests' AND schema_name = 'main')
"""


def add_field_column(field: Field) -> str:
    return f'ALTER TABLE llm_requests ADD COLUMN "{field.name}" {SQL_TYPES[field.kind]}'  # names from FIELDS only


# The run's files, each with its hour; `refused` says why a file is never read (NULL: read it).
LISTING = """
CREATE OR REPLACE TEMP TABLE _listing AS
SELECT unnest($hours::TIMESTAMP[]) AS hour, unnest($paths::VARCHAR[]) AS source_file,
       unnest($names::VARCHAR[]) AS name, unnest($refused::VARCHAR[]) AS refused
"""
# The rows (llm_requests and quarantine) of the window's hours, by the name of the file they came
# from, whose file is not listed in their hour now. By name, so a log root mounted elsewhere
# changes nothing.
FILES_GONE = """
SELECT hour, parse_filename(source_file) AS name, sum(n)::BIGINT FROM (
    SELECT hour, source_file, count(*) AS n FROM llm_requests WHERE hour >= $start AND hour < $end GROUP BY ALL
    UNION ALL SELECT hour, source_file, count(*) FROM quarantine WHERE hour >= $start AND hour < $end GROUP BY ALL)
WHERE (hour, parse_filename(source_file)) NOT IN (SELECT hour, name FROM _listing)
GROUP BY ALL ORDER BY 1, 2
"""

QUARANTINE_DDL = """
CREATE TABLE IF NOT EXISTS quarantine (
    hour TIMESTAMP NOT NULL,
    source_file VARCHAR NOT NULL,
    line_number BIGINT,                 -- NULL when the whole file was unreadable
    reason VARCHAR NOT NULL,
    raw_line VARCHAR,                   -- capped
    quarantined_at TIMESTAMP NOT NULL
)"""

# The files' lines as VARCHAR: NUL never occurs in valid JSON text, so it is a safe "no delimiter".
# Lines DuckDB cannot decode go to the _rejects table instead. No new_line option: the reader
# tells \n from \r\n per file (logs written on Windows); a stray \r in a \n file still makes
# it refuse the file, which is then quarantined whole as unreadable.
# A line longer than max_line_size is rejected (unreadable_line:line_size_over_maximum, with its
# number) only when max_line_size is given and the line fits the buffer: beyond the buffer DuckDB
# drops it without a trace, which ingest checks for (files.check_line_lengths). A 64 MB buffer
# reads as fast as the default.
MAX_LINE_BYTES = 32 << 20
READ_BUFFER_BYTES = 64 << 20
_READ_CSV = f"""read_csv($files, columns = {{'line': 'VARCHAR'}}, delim = chr(0), quote = '', escape = '',
              header = false, auto_detect = false, filename = true,
              max_line_size = {MAX_LINE_BYTES}, buffer_size = {READ_BUFFER_BYTES},
              store_rejects = true, rejects_table = '_rejects', rejects_scan = '_reject_scans')"""

DROP_REJECTS = "DROP TABLE IF EXISTS _rejects; DROP TABLE IF EXISTS _reject_scans"  # before a scan that reads them

READ_LINES = f"""
CREATE OR REPLACE TEMP TABLE _lines AS
SELECT filename AS source_file, row_number() OVER () AS seq, line FROM {_READ_CSV}
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


def _literal(text: str) -> str:
    return quote_literal(text)  # constants of the contract only; values from lines are never spliced in


def _decoded(field: Field) -> str | None:
    """A field's value decoded once from its JSON text v_<name>, for the rules and the typed columns
    alike (each decode costs a pass over the text: strings are unescaped, numbers parsed)."""
    v, t = f"v_{field.name}", f"t_{field.name}"
    if field.kind in ("string", "timestamp"):
        return f"CASE WHEN {t} = 'VARCHAR' THEN {v} ->> '$' END"
    if field.kind in ("integer", "number"):
        return f"try_cast({v} AS {'DOUBLE' if field.kind == 'number' else 'BIGINT'})"
    return None  # string_list: read from its JSON text


def _type_ok(field: Field) -> str:
    v, t = f"v_{field.name}", f"t_{field.name}"
    return {
        "string": f"{t} = 'VARCHAR'",
        "timestamp": f"{t} = 'VARCHAR'",
        "number": f"{t} IN ('BIGINT', 'UBIGINT', 'DOUBLE')",
        # an integer beyond 64 bits is read as a DOUBLE: told apart from a real by its digits,
        # so that it is an invalid value (too big) here as it is in Python, not a wrong type
        "integer": f"({t} IN ('BIGINT', 'UBIGINT') OR ({t} = 'DOUBLE' AND regexp_full_match({v}, '-?[0-9]+')))",
        "string_list": f"{t} = 'ARRAY' AND list_bool_and(list_transform(coalesce(json_type({v}, '$[*]'), []), lambda t: t = 'VARCHAR')) IS NOT FALSE",
    }[field.kind]


def _value_ok(field: Field) -> str | None:
    d = f"d_{field.name}"
    if field.kind in ("number", "integer"):
        # NULL (an integer beyond BIGINT) is out of bounds; NaN is above every number in DuckDB
        return f"coalesce({d} BETWEEN {field.minimum} AND {field.maximum}, false)"
    if field.kind == "timestamp":
        return f"regexp_full_match({d}, {_literal(TIMESTAMP_FORMAT)}) AND ts IS NOT NULL"
    if field.kind == "string" and field.choices:
        return f"{d} IN ({', '.join(_literal(c) for c in field.choices)})"
    if field.kind == "string" and field.nonempty:
        return f"{d} <> ''"
    return None


def _present(field: Field) -> str:
    """The field holds a non-null value. Every test below is a plain predicate that cannot raise
    (types come from t, decoding uses try_cast), so rules are ANDs and ORs, not nested CASEs."""
    return f"t_{field.name} IS NOT NULL AND t_{field.name} <> 'NULL'"


def _rules() -> list[tuple[str, str]]:
    """(condition that breaks the rule, reason), in contract.PROBLEM_ORDER, as validate_record
    reports them: the first is the reason a reader fixing the line wants."""
    rules = []
    for f in FIELDS:
        if f.required:
            rules.append((f"t_{f.name} IS NULL OR t_{f.name} = 'NULL'", f"missing_field:{f.name}"))
    for f in FIELDS:
        rules.append((f"{_present(f)} AND NOT ({_type_ok(f)})", f"wrong_type:{f.name}"))
    for f in FIELDS:
        check = _value_ok(f)
        if check:
            rules.append((f"{_present(f)} AND NOT ({check})", f"invalid_value:{f.name}"))
    return rules


def _reason_cases() -> str:
    """Lines that pass every rule (nearly all) are settled by one predicate; only the others are
    walked through the rules one by one to find the first they break."""
    passes = " AND ".join(f"({cond}) IS NOT TRUE" for cond, _ in _rules())
    cases = [f"WHEN {passes} THEN NULL"] + [f"WHEN {cond} THEN {_literal(reason)}" for cond, reason in _rules()]
    return "\n            ".join(cases)


def _json_type(v: str) -> str:
    """json_type() of a field's JSON text. A string is told by its opening quote: json_type would
    parse the whole of it, and prompts and responses are long (a sixth of the classification)."""
    return f"CASE WHEN starts_with({v}, '\"') THEN 'VARCHAR' ELSE json_type({v}) END"


def _field_columns(values: list[str]) -> str:
    """One column per field (v_<name> its JSON text, t_<name> its JSON type): the ~40 tests below
    read columns instead of extracting list elements again and again (about a quarter faster)."""
    return ", ".join(f"{v} AS v_{f.name}, {_json_type(v)} AS t_{f.name}" for f, v in zip(FIELDS, values, strict=True))


_DECODED_COLUMNS = ", ".join(f"{decoded} AS d_{f.name}" for f in FIELDS if (decoded := _decoded(f)))


# The lines of the hour's files in one scan, in file order: `seq` counts lines across files, so a
# line's number is seq minus its file's first seq, plus one. Right only when the reader rejected no
# line; otherwise ingest re-reads through READ_LINES/NUMBER_LINES above. Numbering makes DuckDB
# run the whole classification on one thread (half the speed on two cores), hence the unnumbered
# SUSPECT_LINES below for the bad lines of files whose good lines stay loaded.
SCAN_LINES = f"""
SELECT filename AS source_file, row_number() OVER () AS seq, line, NULL::VARCHAR AS read_error FROM {_READ_CSV}
"""
NUMBERED_LINES = "SELECT source_file, line_number AS seq, line, read_error FROM _numbered"


def _typed(field: Field) -> str:
    """A valid line's value for llm_requests, from the decoded value (or, for lists, the JSON text)."""
    if field.kind == "string_list":
        return f"coalesce(try_cast(v_{field.name} AS VARCHAR[]), [])"
    return f"d_{field.name}"


_TYPED_COLUMNS = ",\n        ".join(
    f"CASE WHEN reason IS NULL THEN {_typed(f)} END AS {f.name}" for f in FIELDS if f.name != "timestamp"
)

_PATHS = "[" + ", ".join(_literal(f"$.{f.name}") for f in FIELDS) + "]"


_FIELD_LIST = "[" + ", ".join(_literal(f.name) for f in FIELDS) + "]"


def duplicate_key(line: str) -> str:
    """The first contract field (in FIELDS order) that the JSON object `line` holds twice, else
    NULL. Parsers disagree on such a line (DuckDB keeps the first value, Python's json the last),
    so it is quarantined rather than guessed. A duplicated key outside the contract is ignored,
    as unknown fields are. json_keys parses the whole line: run only where lines are already
    read one by one (the exact path, suspects, and files the strict read refused)."""
    # list_transform over a one-element list names the keys once without a scalar subquery, which
    # DuckDB would decorrelate into a join over every line, even those the CASE around skips
    return f"""list_transform([try(json_keys({line}))], lambda k: CASE WHEN len(k) > len(list_distinct(k)) THEN
                list_filter({_FIELD_LIST}, lambda f: len(list_filter(k, lambda x: x = f)) > 1)[1] END)[1]"""


def _text_fields(source: str) -> str:
    """A line's fields, parsed once: json_extract of every field from the text of the lines that
    `source` gives (try() makes bad JSON a NULL, not an error)..."""
    return f"""
SELECT source_file, seq, line, read_error, v IS NOT NULL AS parsed,
       CASE WHEN v IS NOT NULL THEN {duplicate_key("line")} END AS duplicate_key,
       {_field_columns([f"v[{i}]" for i in range(1, len(FIELDS) + 1)])}
FROM (SELECT source_file, seq, line, read_error, try(json_extract(line, {_PATHS})) AS v
      FROM ({source}))
"""


# ... or, for the fast pass, read_json's own parser with every field as a JSON column: the same
# yyjson parse and the same JSON text per field as json_extract gives, in a third of the time of
# splitting lines and parsing them again. It skips blank lines; ingest counts lines separately.
# Strict ($strict files, ignore_errors = false), it raises on the first line it cannot parse, that
# is not an object, or that has a duplicate key: so a file it reads whole has none, at no cost.
# Lenient ($lenient files, those a strict read refused), a bad line becomes an all-NULL row, which
# the rules reject, and a duplicate key keeps its first value: COUNT_LINES finds those lines.
_JSON_COLUMNS = "{" + ", ".join(f"{_literal(f.name)}: 'JSON'" for f in FIELDS) + "}"


def _json_fields(files: str, ignore_errors: bool) -> str:
    return f"""
SELECT filename AS source_file, NULL::BIGINT AS seq, NULL::VARCHAR AS line, NULL::VARCHAR AS read_error,
       true AS parsed, NULL::VARCHAR AS duplicate_key, {_field_columns([f'"{f.name}"' for f in FIELDS])}
FROM read_json({files}, format = 'newline_delimited', columns = {_JSON_COLUMNS},
               ignore_errors = {str(ignore_errors).lower()}, filename = true)
"""


def _classified(fields: str) -> str:
    """Each line classified in one pass: the typed values of valid lines, the raw text of bad ones.
    Nothing here is a window over whole rows: the two rules that need more than one line
    (truncated last line, duplicate request_id) run after, on narrow columns."""
    return f"""
WITH fields AS (  -- a line's hour is its file's (a file no listing names gets none: its valid rows fail NOT NULL)
    SELECT * FROM ({fields}) LEFT JOIN (SELECT source_file, hour FROM _listing) USING (source_file)
),
decoded AS (SELECT *, {_DECODED_COLUMNS} FROM fields),
timed AS (  -- the timestamp parsed once, for its rule and for the column
    SELECT *, try_cast(d_timestamp AS TIMESTAMPTZ) AS ts FROM decoded
),
checked AS (
    SELECT *, CASE
            WHEN read_error IS NOT NULL THEN read_error
            WHEN NOT parsed AND (line IS NULL OR trim(line) = '') THEN 'empty_line'  -- trim copies: bad lines only
            WHEN NOT parsed THEN 'malformed_json'
            WHEN duplicate_key IS NOT NULL THEN 'duplicate_key:' || duplicate_key
            -- a valid JSON array or scalar has none of the fields; only then is the line's type looked at
            WHEN CASE WHEN v_request_id IS NULL AND v_timestamp IS NULL
                      THEN json_type(line) <> 'OBJECT' ELSE false END THEN 'not_a_json_object'
            {_reason_cases()}
        END AS rule_broken
    FROM timed
),
typed AS (
    SELECT *, CASE WHEN rule_broken IS NULL THEN ts AT TIME ZONE 'UTC' END AS ts_utc
    FROM checked
),
judged AS (
    SELECT *, CASE
            WHEN rule_broken IS NOT NULL THEN rule_broken
            WHEN ts_utc < hour OR ts_utc >= hour + INTERVAL 1 HOUR THEN 'timestamp_outside_hour'
        END AS reason
    FROM typed
)
SELECT hour, source_file, seq, reason, CASE WHEN reason IS NOT NULL THEN left(line, {RAW_LINE_CAP}) END AS line,
       CASE WHEN reason IS NOT NULL THEN hash(line) END AS line_hash,
       CASE WHEN reason IS NULL THEN ts_utc END AS "timestamp",
        {_TYPED_COLUMNS}
FROM judged
"""


def classified(source: str) -> str:
    """The lines that `source` gives (SCAN_LINES and the like), classified from their text."""
    return _classified(_text_fields(source))


def stage(source: str) -> str:
    return "CREATE OR REPLACE TEMP TABLE _staged AS " + classified(source)


# A bad line that is its file's last is most likely cut off by a writer that had not finished.
MARK_TRUNCATED = """
UPDATE _staged SET reason = 'truncated_last_line'
FROM (SELECT source_file, max(seq) AS last_seq FROM _staged GROUP BY source_file) f
WHERE _staged.reason = 'malformed_json' AND _staged.source_file = f.source_file AND _staged.seq = f.last_seq
"""

# The first occurrence in its hour, in file/line order, is kept; later ones are quarantined (raw text added by
# fill_duplicate_lines, from the source, since _staged keeps text only for lines already bad).
MARK_DUPLICATES = """
UPDATE _staged SET reason = 'duplicate_request_id'
FROM (SELECT source_file, seq FROM (
          SELECT source_file, seq,
                 row_number() OVER (PARTITION BY hour, request_id ORDER BY source_file, seq) AS n
          FROM _staged WHERE reason IS NULL)
      WHERE n > 1) d
WHERE _staged.source_file = d.source_file AND _staged.seq = d.seq
"""


def fill_duplicate_lines(source: str) -> str:
    return f"""
UPDATE _staged SET line = left(src.line, {RAW_LINE_CAP})
FROM ({source}) src
WHERE _staged.reason = 'duplicate_request_id' AND _staged.source_file = src.source_file AND _staged.seq = src.seq
"""


# BY NAME: the table's column order (a column added to an existing table goes last) never matters.
_REQUEST_COLUMNS = ", ".join(f'"{f.name}"' for f in FIELDS)
INSERT_REQUESTS = f"""
INSERT INTO llm_requests BY NAME
SELECT hour, {_REQUEST_COLUMNS}, source_file
FROM _staged WHERE reason IS NULL
"""


# The fast pass: every valid line of every file straight into llm_requests, in parallel, with no
# line numbers and no staging copy of the texts. FILE_STATUS then tells the files it did not
# settle: those with bad lines (the lines read outnumber the rows loaded) keep their rows and get
# their bad lines numbered (BAD_LINES, LOCATE_BAD_LINES); those with an undecodable line or a
# request_id seen twice (`exact`) lose their rows again and are staged exactly (stage(), straight
# from NUMBERED_LINES when one of them is `undecodable`).
def insert_valid_lines(strict: bool, lenient: bool) -> str:
    """INSERT_VALID_LINES over $strict files, $lenient files, or both (read_json takes no empty list)."""
    reads = [_json_fields("$strict", False)] if strict else []
    reads += [_json_fields("$lenient", True)] if lenient else []
    return f"""
INSERT INTO llm_requests BY NAME
SELECT hour, {_REQUEST_COLUMNS}, source_file
FROM ({_classified(" UNION ALL ".join(reads))}) WHERE reason IS NULL
"""


INSERT_VALID_LINES = insert_valid_lines(strict=True, lenient=False)  # the common case: every file strict
# The lines of each file and, in the files read leniently only (CASE evaluates json_keys for
# their lines alone), those with a duplicate key: the lenient read loaded them as valid.
COUNT_LINES = f"""
CREATE OR REPLACE TEMP TABLE _file_lines AS
SELECT filename AS source_file, count(*) AS n,
       count(*) FILTER (WHERE CASE WHEN list_contains($lenient, filename)
                                   THEN {duplicate_key("line")} IS NOT NULL ELSE false END) AS duplicate_keys
FROM {_READ_CSV} GROUP BY ALL
"""
FILE_STATUS = """
WITH lines AS (FROM _file_lines),
loaded AS (SELECT source_file, count(*) AS n FROM llm_requests WHERE hour >= $start AND hour < $end GROUP BY ALL),
rejected AS (SELECT s.file_path AS source_file FROM _rejects e JOIN _reject_scans s USING (scan_id, file_id)),
duplicated AS (
    SELECT source_file FROM llm_requests
    WHERE hour >= $start AND hour < $end AND (hour, request_id) IN (
        SELECT hour, request_id FROM llm_requests WHERE hour >= $start AND hour < $end
        GROUP BY ALL HAVING count(*) > 1)
)
SELECT hour, source_file, coalesce(lines.n, 0) AS lines, coalesce(loaded.n, 0) AS loaded,
       source_file IN (SELECT * FROM rejected UNION ALL SELECT * FROM duplicated)
       OR coalesce(lines.duplicate_keys, 0) > 0 AS exact,
       source_file IN (SELECT * FROM rejected) AS undecodable
FROM (SELECT source_file FROM lines UNION SELECT source_file FROM loaded UNION SELECT * FROM rejected)
     LEFT JOIN lines USING (source_file) LEFT JOIN loaded USING (source_file)
     LEFT JOIN (SELECT source_file, hour FROM _listing) USING (source_file)
ORDER BY 1, 2
"""

# The bad lines of files whose valid rows stay as loaded, classified again in parallel. Only
# suspects are parsed: lines whose request_id, as a regular expression finds it in the text, is
# not among the rows loaded from these files in the line's hour (a fifth of the cost of parsing
# every line; a file of bad lines only costs no lookup at all). A bad line the search misses (it
# shares an id with a row of these files) leaves its file's bad lines short of the count, and the
# hour is then staged exactly.
SUSPECT_LINES = f"""
SELECT source_file, NULL::BIGINT AS seq, line, NULL::VARCHAR AS read_error
FROM (SELECT filename AS source_file, line FROM {_READ_CSV})
     JOIN (SELECT source_file, hour FROM _listing) USING (source_file)
WHERE (hour, coalesce(regexp_extract(line, '"request_id"\\s*:\\s*"([^"\\\\]*)"', 1), '')) NOT IN (
    SELECT hour, request_id FROM llm_requests
    WHERE hour >= $start AND hour < $end AND source_file IN (SELECT unnest($files)))
"""
BAD_LINES = f"""
CREATE OR REPLACE TEMP TABLE _bad_lines AS
SELECT source_file, line_hash, reason, line FROM ({classified(SUSPECT_LINES)})
WHERE reason IS NOT NULL
"""
# ... and numbered by a scan that only numbers and hashes lines (no parse): the k-th bad line
# with a given hash is the k-th line of its file with that hash (identical lines share a reason).
# A good line whose 64-bit hash equals a bad line's would take its number: ~1e-10 per hour of a
# million lines. Valid only when the reader rejected no line (those files are staged exactly).
LOCATE_BAD_LINES = f"""
CREATE OR REPLACE TEMP TABLE _located AS
WITH numbered AS (
    SELECT filename AS source_file, row_number() OVER () AS seq, hash(line) AS line_hash FROM {_READ_CSV}
), files AS (
    SELECT source_file, min(seq) AS first_seq, max(seq) AS last_seq FROM numbered GROUP BY ALL
), candidates AS (
    SELECT source_file, seq - first_seq + 1 AS line_number, seq = last_seq AS is_last, line_hash,
           row_number() OVER (PARTITION BY source_file, line_hash ORDER BY seq) AS k
    FROM numbered JOIN files USING (source_file)
    WHERE line_hash IN (SELECT line_hash FROM _bad_lines)
), bad AS (
    SELECT *, row_number() OVER (PARTITION BY source_file, line_hash ORDER BY reason, line) AS k FROM _bad_lines
)
SELECT source_file, line_number,
       CASE WHEN reason = 'malformed_json' AND is_last THEN 'truncated_last_line' ELSE reason END AS reason, line
FROM bad JOIN candidates USING (source_file, line_hash, k)
"""
INSERT_LOCATED = """
INSERT INTO quarantine
SELECT hour, source_file, line_number, reason, line, now()::TIMESTAMP FROM _located JOIN _listing USING (source_file)
"""

# $numbered: seq already is the line number (the slow path); else seq counts across files.
INSERT_QUARANTINE = """
INSERT INTO quarantine
SELECT s.hour, s.source_file, CASE WHEN $numbered THEN seq ELSE seq - f.first_seq + 1 END, reason, line,
       now()::TIMESTAMP
FROM _staged s JOIN (SELECT source_file, min(seq) AS first_seq FROM _staged GROUP BY source_file) f
     USING (source_file)
WHERE reason IS NOT NULL
"""
