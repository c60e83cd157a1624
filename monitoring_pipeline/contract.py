"""The log record contract: one JSON object per line, one line per model call.

Each field's kind and bounds are declared once, here; the app-side validator below and ingest's
SQL rules (defs/ingest/sql.py) are both derived from them, and the README's table mirrors them
(test_definitions checks it). Adding an optional string field is one line in FIELDS, plus its
column in llm_requests' DDL and its README row.
"""

import re
from dataclasses import dataclass
from datetime import datetime

MAX_COUNT = 10**12  # tokens and characters of one call: far beyond any model, far below BIGINT
MAX_LATENCY_MS = 86_400_000  # a day


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # string | timestamp | number | integer | string_list (see KINDS)
    required: bool
    description: str
    minimum: int | None = None  # number, integer: the smallest valid value
    maximum: int | None = None  # number, integer: the largest valid value
    choices: tuple[str, ...] = ()  # string: the only valid values, when it is an enumeration
    nonempty: bool = False  # string: "" is invalid


KINDS = ("string", "timestamp", "number", "integer", "string_list")

FIELDS: tuple[Field, ...] = (
    Field("request_id", "string", True, "unique id of the model call, not empty", nonempty=True),
    Field("timestamp", "timestamp", True, "ISO 8601 with offset (`Z` or `+hh:mm`), when the call started"),
    Field("model", "string", True, "model or deployment name"),
    Field("latency_ms", "number", True, "end-to-end latency in ms, 0 to 86,400,000 (a day)", 0, MAX_LATENCY_MS),
    Field("input_tokens", "integer", True, "prompt tokens, 0 to 10^12", 0, MAX_COUNT),
    Field("output_tokens", "integer", True, "completion tokens, 0 to 10^12", 0, MAX_COUNT),
    Field("status", "string", True, '"ok" or "error"', choices=("ok", "error")),
    Field("input_length", "integer", False, "prompt length in characters, 0 to 10^12", 0, MAX_COUNT),
    Field("output_length", "integer", False, "response length in characters, 0 to 10^12", 0, MAX_COUNT),
    Field("user_id", "string", False, "the end user (pseudonymous id)"),
    Field("error_type", "string", False, "error class when status is error"),
    Field("feedback", "integer", False, "user rating 1-5, or null when none was given", 1, 5),
    Field("safety_flags", "string_list", False, "violated safety categories; [] or absent = none"),
    Field("prompt", "string", False, "prompt text"),
    Field("response", "string", False, "response text"),
    Field(
        "finish_reason",
        "string",
        False,
        "why generation stopped (OpenTelemetry `gen_ai.response.finish_reasons`): `stop`, `length` (truncated), "
        "`content_filter`, `tool_calls`, `error`, ... (any string)",
    ),
    Field("output_type", "string", False, "`text` (default when absent) or `json` when the app asked for JSON output"),
)

FIELD_NAMES = tuple(f.name for f in FIELDS)
REQUIRED = tuple(f.name for f in FIELDS if f.required)
STATUSES = next(f.choices for f in FIELDS if f.name == "status")
RAW_LINE_CAP = 2000  # characters of a bad line kept in quarantine.raw_line

# ISO 8601 with an explicit offset, so that no session time zone decides what the time was. The
# pattern narrows what each side's parser would take to one format both read alike (DuckDB takes
# 24:00 and leading blanks, Python week dates and a comma before the fraction); each side then
# checks the calendar with its own parser. Python (re.fullmatch) and DuckDB (RE2,
# regexp_full_match) read it alike.
TIMESTAMP_FORMAT = (
    r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?"
    r"(Z|[+-]([01][0-9]|2[0-3]):?[0-5][0-9])"
)
_TIMESTAMP = re.compile(TIMESTAMP_FORMAT)

# The order in which a line's problems are reported; the first is the quarantine reason. (Ingest
# checks the raw text first: malformed_json, not_a_json_object, duplicate_key, then these.)
PROBLEM_ORDER = ("missing_field", "wrong_type", "invalid_value")


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_ok(field: Field, value) -> bool:
    if field.kind in ("string", "timestamp"):
        return isinstance(value, str)
    if field.kind == "number":
        return isinstance(value, float) or _is_integer(value)
    if field.kind == "integer":
        return _is_integer(value)  # 12.0 is a JSON real, not an integer, on both sides
    return isinstance(value, list) and all(isinstance(v, str) for v in value)  # string_list


def _timestamp_ok(text: str) -> bool:
    if not _TIMESTAMP.fullmatch(text):
        return False
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _value_ok(field: Field, value) -> bool:
    if field.kind in ("number", "integer"):
        # NaN fails every comparison (in DuckDB NaN is above every number), Infinity the maximum
        return (field.minimum is None or value >= field.minimum) and (field.maximum is None or value <= field.maximum)
    if field.kind == "timestamp":
        return _timestamp_ok(value)
    if field.kind == "string":
        return (not field.choices or value in field.choices) and not (field.nonempty and value == "")
    return True


def validate_record(record: dict) -> list[str]:
    """Problems with one record, in the words quarantine uses and in the order ingest checks them
    (so the first is the reason ingest would give); [] when it is valid.

    The app-side writer calls this so a bug shows up in the app, not an hour later. Ingest applies
    the same rules in SQL, generated from the same FIELDS. A dict cannot hold a key twice, so a
    duplicate key, which only raw JSON text can have, is beyond this check (and json.dumps never
    writes one). Ingest quarantines a line that gives a contract field twice as
    `duplicate_key:<field>`, right after the JSON syntax rules (malformed_json, not_a_json_object)
    and before every rule below, since which of the values was meant is unknown.
    """
    problems: list[tuple[int, int, str]] = []
    for index, field in enumerate(FIELDS):
        value = record.get(field.name)
        if value is None:
            problem = "missing_field" if field.required else None
        elif not _type_ok(field, value):
            problem = "wrong_type"
        elif not _value_ok(field, value):
            problem = "invalid_value"
        else:
            problem = None
        if problem:
            problems.append((PROBLEM_ORDER.index(problem), index, f"{problem}:{field.name}"))
    return [text for _, _, text in sorted(problems)]
