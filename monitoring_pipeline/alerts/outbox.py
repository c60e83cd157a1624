"""The notification log: every alert is written here before it is posted and marked sent after,
so an alert that could not be delivered is retried on a later tick and one that was delivered is
never sent again. It lives in its own DuckDB file: a run holds the warehouse's write lock for
minutes, and alerts must not wait for it."""

import json
from dataclasses import dataclass

import duckdb

OUTBOX_DDL = """
CREATE TABLE IF NOT EXISTS alert_outbox (
    alert_id VARCHAR PRIMARY KEY,       -- run:asset:check:partition: one alert per evaluation
    created_at TIMESTAMP NOT NULL,
    channel VARCHAR NOT NULL,
    payload JSON NOT NULL,              -- {"text": ..., "blocks": [...]}
    status VARCHAR NOT NULL,            -- pending | sent
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error VARCHAR,
    sent_at TIMESTAMP
)"""


@dataclass(frozen=True)
class Alert:
    alert_id: str
    channel: str
    text: str
    blocks: list
    attempts: int = 0


def ensure(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(OUTBOX_DDL)


def enqueue(conn: duckdb.DuckDBPyConnection, alerts: list[Alert]) -> int:
    """Record alerts as pending; ones already known (by id) are left as they are. Returns how many were new."""
    before = conn.execute("SELECT count(*) FROM alert_outbox").fetchone()[0]
    for alert in alerts:
        conn.execute(
            "INSERT OR IGNORE INTO alert_outbox (alert_id, created_at, channel, payload, status)"
            " VALUES ($id, now()::TIMESTAMP, $channel, $payload, 'pending')",
            {"id": alert.alert_id, "channel": alert.channel,
             "payload": json.dumps({"text": alert.text, "blocks": alert.blocks})},
        )
    return conn.execute("SELECT count(*) FROM alert_outbox").fetchone()[0] - before


def pending(conn: duckdb.DuckDBPyConnection) -> list[Alert]:
    rows = conn.execute(
        "SELECT alert_id, channel, payload, attempts FROM alert_outbox WHERE status = 'pending' ORDER BY created_at, alert_id"
    ).fetchall()
    return [Alert(r[0], r[1], json.loads(r[2])["text"], json.loads(r[2])["blocks"], r[3]) for r in rows]


def mark_sent(conn: duckdb.DuckDBPyConnection, alert_id: str) -> None:
    conn.execute(
        "UPDATE alert_outbox SET status = 'sent', sent_at = now()::TIMESTAMP, attempts = attempts + 1,"
        " last_error = NULL WHERE alert_id = $id",
        {"id": alert_id},
    )


def mark_failed(conn: duckdb.DuckDBPyConnection, alert_id: str, error: str) -> None:
    conn.execute(
        "UPDATE alert_outbox SET attempts = attempts + 1, last_error = $error WHERE alert_id = $id",
        {"id": alert_id, "error": error[:500]},
    )
