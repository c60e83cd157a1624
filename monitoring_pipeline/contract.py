"""The log record contract: one JSON object per line, one line per model call.

Used by the app-side writer (applog), by ingest validation, and by the README's table.
"""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # string | timestamp | number | integer | status | stars | string_list
    required: bool
    description: str


FIELDS: tuple[Field, ...] = (
    Field("request_id", "string", True, "unique id of the model call"),
    Field("timestamp", "timestamp", True, "ISO 8601 with offset, when the call started"),
    Field("model", "string", True, "model or deployment name"),
    Field("latency_ms", "number", True, "end-to-end latency in milliseconds, >= 0 (NaN and Infinity are invalid)"),
    Field("input_tokens", "integer", True, "prompt tokens, >= 0"),
    Field("output_tokens", "integer", True, "completion tokens, >= 0"),
    Field("status", "status", True, '"ok" or "error"'),
    Field("input_length", "integer", False, "prompt length in characters, >= 0"),
    Field("output_length", "integer", False, "response length in characters, >= 0"),
    Field("user_id", "string", False, "the end user (pseudonymous id)"),
    Field("error_type", "string", False, "error class when status is error"),
    Field("feedback", "stars", False, "user rating 1-5, or null when none was given"),
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
STATUSES = ("ok", "error")
RAW_LINE_CAP = 2000  # characters of a bad line kept in quarantine.raw_line


def validate_record(record: dict) -> list[str]:
    """Problems with one record, in the words quarantine uses; [] when it is valid.

    The app-side writer calls this so a bug shows up in the app, not an hour later.
    Ingest applies the same rules in SQL.
    """
    problems = []
    for field in FIELDS:
        value = record.get(field.name)
        if value is None:
            if field.required:
                problems.append(f"missing_field:{field.name}")
            continue
        ok = {
            "string": isinstance(value, str) and (value != "" or field.name != "request_id"),
            "timestamp": isinstance(value, str),
            "number": isinstance(value, (int, float)) and not isinstance(value, bool),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "status": isinstance(value, str),
            "stars": isinstance(value, int) and not isinstance(value, bool),
            "string_list": isinstance(value, list) and all(isinstance(v, str) for v in value),
        }[field.kind]
        if not ok:
            problems.append(f"wrong_type:{field.name}")
        elif (
            (field.kind in ("number", "integer") and not 0 <= value < math.inf)
            or (field.kind == "stars" and not 1 <= value <= 5)
            or (field.kind == "status" and value not in STATUSES)
        ):  # NaN fails both
            problems.append(f"invalid_value:{field.name}")
    return problems
