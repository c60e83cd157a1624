"""The app side: standard logging writes lines the pipeline ingests, into the right hour."""

import json
import logging
from datetime import datetime, timezone

import pytest

from monitoring_pipeline.applog import HourlyJsonlHandler, log_request
from monitoring_pipeline.defs.ingest.assets import llm_requests
from monitoring_pipeline_tests.conftest import PARTITION


@pytest.fixture
def app_logger(logs):
    logger = logging.Logger("test-app")
    handler = HourlyJsonlHandler(logs.root, prefix="web")
    logger.addHandler(handler)
    yield logger
    handler.close()


def test_applog_writes_into_the_utc_hour_folder_of_the_timestamp(app_logger, logs):
    app_logger.info(
        "llm_request",
        extra={
            "model": "m",
            "latency_ms": 5,
            "input_tokens": 1,
            "output_tokens": 1,
            "status": "ok",
            "timestamp": "2026-03-01T12:59:59+02:00",
        },
    )
    app_logger.info("unrelated message")  # no request fields: not written
    (path,) = list(logs.root.rglob("*.jsonl"))
    assert path.relative_to(logs.root).parts[:2] == ("dt=2026-03-01", "hour=10")
    (line,) = path.read_text().splitlines()
    data = json.loads(line)
    assert data["timestamp"] == "2026-03-01T12:59:59+02:00" and data["request_id"]


def test_applog_lines_are_ingested_by_the_pipeline(app_logger, run_hour, query):
    for i in range(3):
        log_request(
            app_logger,
            request_id=f"r{i}",
            model="chat-large",
            latency_ms=100 + i,
            input_tokens=10,
            output_tokens=5,
            status="ok",
            feedback=5,
            timestamp=datetime(2026, 3, 1, 10, 15, tzinfo=timezone.utc),
        )
    run_hour(PARTITION, assets=[llm_requests])
    assert query("SELECT request_id, latency_ms, safety_flags FROM llm_requests ORDER BY 1") == [
        ("r0", 100.0, []),
        ("r1", 101.0, []),
        ("r2", 102.0, []),
    ]
    assert query("SELECT count(*) FROM quarantine") == [(0,)]


def test_log_request_rejects_a_record_ingest_would_quarantine(app_logger, logs):
    with pytest.raises(ValueError) as raised:
        log_request(app_logger, model="m", latency_ms=-1, input_tokens=1, output_tokens=1)
    assert "invalid_value:latency_ms" in str(raised.value) and "missing_field:status" in str(raised.value)
    for latency in (float("nan"), float("inf")):  # json.dumps would write NaN / Infinity, which ingest rejects
        with pytest.raises(ValueError, match="invalid_value:latency_ms"):
            log_request(app_logger, model="m", latency_ms=latency, input_tokens=1, output_tokens=1, status="ok")
    with pytest.raises(ValueError, match="unknown_field:temperature"):
        log_request(app_logger, model="m", latency_ms=1, input_tokens=1, output_tokens=1, status="ok", temperature=0.2)
    assert not list(logs.root.rglob("*.jsonl"))
