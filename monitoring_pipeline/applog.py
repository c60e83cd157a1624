"""The app side: write one JSON line per model call into the hourly folder the pipeline reads.

    import logging
    from monitoring_pipeline.applog import HourlyJsonlHandler, log_request

    logger = logging.getLogger("llm")
    logger.setLevel(logging.INFO)
    logger.addHandler(HourlyJsonlHandler("data/logs"))
    logger.info("llm_request", extra={"model": "chat-large", "latency_ms": 812, ...})
    # or, validated before it is written:
    log_request(logger, model="chat-large", latency_ms=812, input_tokens=50, output_tokens=20, status="ok")

Named applog so it never shadows the standard library's logging.
"""

import json
import logging
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from monitoring_pipeline.contract import FIELD_NAMES, validate_record


def hour_folder(log_dir: str | os.PathLike, when: datetime) -> Path:
    """dt=YYYY-MM-DD/hour=HH of `when` in UTC: the pipeline's partition for that moment."""
    utc = when.astimezone(timezone.utc)
    return Path(log_dir) / f"dt={utc:%Y-%m-%d}" / f"hour={utc:%H}"


def _timestamp(value) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class HourlyJsonlHandler(logging.Handler):
    """Writes log records that carry request fields (via `extra=`) as JSON lines, one file per
    process per hour (`<prefix>-<pid>.jsonl`), so concurrent writers never interleave lines.
    Records without any request field are ignored, so it can sit on a shared logger."""

    def __init__(self, log_dir: str | os.PathLike, prefix: str = "app", level: int = logging.INFO):
        super().__init__(level)
        self.log_dir = Path(log_dir)
        self.prefix = prefix
        self._path: Path | None = None
        self._stream: TextIO | None = None

    def emit(self, record: logging.LogRecord) -> None:
        fields = {name: getattr(record, name) for name in FIELD_NAMES if hasattr(record, name)}
        if not fields:
            return
        try:
            fields.setdefault("request_id", str(uuid.uuid4()))
            when = _timestamp(fields.get("timestamp") or datetime.fromtimestamp(record.created, timezone.utc))
            fields["timestamp"] = when.isoformat()
            line = json.dumps(fields, ensure_ascii=False, default=str) + "\n"
            path = hour_folder(self.log_dir, when) / f"{self.prefix}-{os.getpid()}.jsonl"
            if path != self._path:
                self._close_stream()
                path.parent.mkdir(parents=True, exist_ok=True)
                self._stream, self._path = path.open("a", encoding="utf-8"), path
            stream = self._stream
            assert stream is not None
            stream.write(line)
            stream.flush()
        except Exception:
            self.handleError(record)

    def _close_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream, self._path = None, None

    def close(self) -> None:
        self.acquire()
        try:
            self._close_stream()
        finally:
            self.release()
        super().close()


def log_request(logger: logging.Logger, **fields) -> None:
    """Validate one model call against the log contract, then log it. Raises ValueError with the
    problems (the same words quarantine would use) instead of writing a line ingest would reject."""
    fields.setdefault("request_id", str(uuid.uuid4()))
    when = fields.get("timestamp") or datetime.now(timezone.utc)
    # a datetime is the app's own clock (naive means UTC); a string is checked as ingest checks it
    fields["timestamp"] = _timestamp(when).isoformat() if isinstance(when, datetime) else when
    fields.setdefault("safety_flags", [])
    problems = validate_record(fields)
    unknown = set(fields) - set(FIELD_NAMES)
    if problems or unknown:
        raise ValueError(f"invalid llm_request: {problems + [f'unknown_field:{u}' for u in sorted(unknown)]}")
    logger.info("llm_request", extra=fields)
