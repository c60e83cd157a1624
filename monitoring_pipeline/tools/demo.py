"""Sample logs with injected incidents, replaying the arrival and token shape of a real trace.

The Azure LLM inference trace 2023 (sample_data/, CC-BY 4.0, see its README) gives arrival
offsets within the hour and input/output token counts: `conv` rows become model chat-large,
`code` rows code-small. Everything the trace lacks is synthesized here, seeded by the day:
latency (a base plus a per-token cost, log-normal noise), status and error_type, user_id,
feedback (about 8 % of calls rate them), safety_flags, and short prompt/response texts.
"""

import csv
import json
import logging
import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from monitoring_pipeline.applog import HourlyJsonlHandler, hour_folder

SAMPLE_DATA = Path(__file__).parents[1] / "sample_data"
TRACES = {"chat-large": "AzureLLMInferenceTrace_conv.csv", "code-small": "AzureLLMInferenceTrace_code.csv"}
LATENCY = {"chat-large": (250.0, 0.15, 4.0), "code-small": (80.0, 0.05, 3.0)}  # base ms, ms/input, ms/output token

# Hour of the day -> the incident injected there.
INCIDENTS = {
    3: "malformed lines",
    6: "latency spike on chat-large",
    11: "error burst on code-small",
    15: "safety violations",
    19: "an hour of bad feedback",
}


@dataclass(frozen=True)
class TraceRow:
    offset_s: float  # seconds into the hour
    input_tokens: int
    output_tokens: int


def load_trace(model: str) -> list[TraceRow]:
    rows = []
    with (SAMPLE_DATA / TRACES[model]).open(newline="") as f:
        for rec in csv.DictReader(f):
            ts = datetime.fromisoformat(rec["TIMESTAMP"][:26])
            rows.append(
                TraceRow(
                    ts.minute * 60 + ts.second + ts.microsecond / 1e6,
                    int(rec["ContextTokens"]),
                    int(rec["GeneratedTokens"]),
                )
            )
    return rows


def _feedback(rng: random.Random, bad_hour: bool) -> int | None:
    if rng.random() > (0.3 if bad_hour else 0.08):
        return None
    weights = [30, 35, 15, 12, 8] if bad_hour else [2, 3, 10, 35, 50]
    return rng.choices([1, 2, 3, 4, 5], weights)[0]


def hour_records(
    hour: datetime, hour_of_day: int, traces: dict[str, list[TraceRow]], rng: random.Random, volume: int
) -> list[dict]:
    records = []
    for i in range(volume):
        model = "chat-large" if rng.random() < 0.7 else "code-small"
        row = rng.choice(traces[model])
        base, per_in, per_out = LATENCY[model]
        latency = (base + per_in * row.input_tokens + per_out * row.output_tokens) * rng.lognormvariate(0, 0.2)
        if hour_of_day == 6 and model == "chat-large":
            latency *= 2.5
        status, error_type = "ok", None
        error_p = 0.12 if (hour_of_day == 11 and model == "code-small") else 0.001
        if rng.random() < error_p:
            status, error_type = "error", rng.choice(["timeout", "rate_limited", "server_error"])
        flags = []
        if hour_of_day == 15 and i in (volume // 3, 2 * volume // 3):
            flags = ["self_harm"] if i == volume // 3 else ["pii_leak"]
        records.append(
            {
                "request_id": f"{hour:%Y%m%d%H}-{i:05d}",
                "timestamp": (hour + timedelta(seconds=row.offset_s)).isoformat(),
                "model": model,
                "latency_ms": round(latency, 1),
                "input_tokens": row.input_tokens,
                "output_tokens": 0 if status == "error" else row.output_tokens,
                "input_length": row.input_tokens * 4,
                "output_length": 0 if status == "error" else row.output_tokens * 4,
                "user_id": f"user-{rng.randrange(500):03d}",
                "status": status,
                "error_type": error_type,
                "feedback": None if status == "error" else _feedback(rng, hour_of_day == 19),
                "safety_flags": flags,
                "prompt": f"[{model}] prompt of {row.input_tokens} tokens",
                "response": "" if status == "error" else f"response of {row.output_tokens} tokens",
            }
        )
    return records


MALFORMED = [
    b'{"request_id": "bad-json", "model": "chat-large", "latency_ms": 10,,}\n',
    b'{"request_id": "neg", "timestamp": "%(ts)s", "model": "chat-large", "latency_ms": -5, '
    b'"input_tokens": 1, "output_tokens": 1, "status": "ok"}\n',
    b'{"request_id": "stars", "timestamp": "%(ts)s", "model": "chat-large", "latency_ms": 5, '
    b'"input_tokens": 1, "output_tokens": 1, "status": "ok", "feedback": 7}\n',
    b'{"request_id": "no-model", "timestamp": "%(ts)s", "latency_ms": 5, "input_tokens": 1, '
    b'"output_tokens": 1, "status": "ok"}\n',
    b'{"request_id": "latin1", "prompt": "caf\xe9"}\n',
    b'{"request_id": "truncated", "timestamp": "%(ts)s", "model": "chat-la',
]


def write_sample_logs(log_dir: str | Path, day: datetime, volume_per_hour: int = 1000) -> dict:
    """Write 24 hours of logs for `day` (UTC) with the incidents in INCIDENTS. Returns counts."""
    day = day.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=timezone.utc)
    traces = {model: load_trace(model) for model in TRACES}
    rng = random.Random(day.toordinal())
    logger = logging.Logger("monitoring_pipeline.tools.demo")  # private: not attached to the root logger
    written = 0
    for h in range(24):
        hour = day + timedelta(hours=h)
        folder = hour_folder(log_dir, hour)
        for old in folder.glob("*.jsonl*"):
            old.unlink()  # a re-run of the demo writes the same hour again, not twice
        handler = HourlyJsonlHandler(log_dir, prefix="demo")
        logger.addHandler(handler)
        volume = int(volume_per_hour * (1 + 0.5 * math.sin((h - 9) / 24 * 2 * math.pi)))
        records = hour_records(hour, h, traces, rng, volume)
        for record in records:
            logger.info("llm_request", extra=record)
        logger.removeHandler(handler)
        handler.close()
        written += len(records)
        if h == 3:
            _write_malformed(folder, hour, records[0])
    return {"hours": 24, "valid_lines": written, "malformed_lines": len(MALFORMED) + 1}


def _write_malformed(folder: Path, hour: datetime, duplicate_of: dict) -> None:
    ts = (hour + timedelta(minutes=30)).isoformat().encode()
    lines = [line.replace(b"%(ts)s", ts) for line in MALFORMED]
    lines.insert(-1, (json.dumps(duplicate_of) + "\n").encode())  # a duplicate request_id
    (folder / "demo-malformed.jsonl").write_bytes(b"".join(lines))
