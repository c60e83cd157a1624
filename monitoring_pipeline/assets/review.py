"""llm_requests -> review_sample: what humans read to catch quality drift the metrics miss."""

import json
import os
from pathlib import Path

import dagster as dg

from monitoring_pipeline.partitions import hourly_partitions
from monitoring_pipeline.resources import DuckDBWarehouse, MonitoringSettings

REVIEW_SAMPLE_DDL = """
CREATE TABLE IF NOT EXISTS review_sample (
    hour TIMESTAMP NOT NULL,
    request_id VARCHAR NOT NULL,
    reasons VARCHAR[] NOT NULL,         -- why it was picked: random, error, safety_flag, low_feedback
    "timestamp" TIMESTAMP NOT NULL,
    model VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    error_type VARCHAR,
    latency_ms DOUBLE NOT NULL,
    feedback TINYINT,
    safety_flags VARCHAR[] NOT NULL,
    user_id VARCHAR,
    prompt VARCHAR,
    response VARCHAR
)"""

# The random share is a pure function of request_id (first 32 bits of its MD5), so a re-run
# picks the same rows, and so does another machine.
SELECT_SAMPLE = """
INSERT INTO review_sample
SELECT hour, request_id, reasons, "timestamp", model, status, error_type, latency_ms, feedback,
       safety_flags, user_id, prompt, response
FROM (
    SELECT *, list_filter([
        CASE WHEN ('0x' || left(md5(request_id), 8))::UBIGINT / 4294967296.0 < $rate THEN 'random' END,
        CASE WHEN status = 'error' THEN 'error' END,
        CASE WHEN len(safety_flags) > 0 THEN 'safety_flag' END,
        CASE WHEN feedback <= 2 THEN 'low_feedback' END
    ], lambda x: x IS NOT NULL) AS reasons
    FROM llm_requests WHERE hour = $hour
)
WHERE len(reasons) > 0
ORDER BY "timestamp", request_id
"""


def sample_path(output_dir: str, partition_key: str) -> Path:
    """<output_dir>/dt=YYYY-MM-DD/hour=HH/review_sample.jsonl, beside the logs' layout."""
    day, hour = partition_key[:10], partition_key[11:13]
    return Path(output_dir) / f"dt={day}" / f"hour={hour}" / "review_sample.jsonl"


@dg.asset(
    partitions_def=hourly_partitions,
    deps=["llm_requests"],
    pool="duckdb",
    group_name="review",
    kinds={"duckdb"},
)
def review_sample(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse, settings: MonitoringSettings):
    """About 1 % of the hour's requests plus every error, safety flag and low rating, each with why."""
    config = settings.load()
    hour = context.partition_time_window.start.replace(tzinfo=None)
    with warehouse.get_connection() as conn:
        conn.execute(REVIEW_SAMPLE_DDL)
        conn.execute("BEGIN")
        try:
            conn.execute("DELETE FROM review_sample WHERE hour = $hour", {"hour": hour})
            conn.execute(SELECT_SAMPLE, {"hour": hour, "rate": config.review.sample_rate})
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        cursor = conn.execute("SELECT * FROM review_sample WHERE hour = $hour ORDER BY \"timestamp\", request_id",
                              {"hour": hour})
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row)) for row in cursor.fetchall()]
        requests = conn.execute("SELECT count(*) FROM llm_requests WHERE hour = $hour", {"hour": hour}).fetchone()[0]

    path = sample_path(config.review.output_dir, context.partition_key)
    _write_jsonl(path, rows)
    by_reason: dict[str, int] = {}
    for row in rows:
        for reason in row["reasons"]:
            by_reason[reason] = by_reason.get(reason, 0) + 1
    return dg.MaterializeResult(
        metadata={
            "rows": len(rows),
            "requests": requests,
            "sampled_share": len(rows) / requests if requests else 0.0,
            "by_reason": by_reason,
            "path": dg.MetadataValue.path(str(path)),
        }
    )


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    """Write then rename, so a reviewer never opens a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, default=str, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
