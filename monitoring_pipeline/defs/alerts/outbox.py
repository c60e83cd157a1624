"""The notification log: incidents, and every message, written before it is posted.

It lives in its own DuckDB file (resource `alert_state`): a run holds the warehouse's write lock
for minutes, and alerts must not wait for it.

A message's life: `pending` (to post) -> `posting` (an attempt started; written before the HTTP
request) -> `sent`. A post Slack definitely refused (429, 5xx, refused connection) goes back to
`pending`, not before its Retry-After. A post whose outcome is unknown (connection reset after
the request went out, timeout, or a tick that crashed mid-post) stays `posting`: the next tick
looks for it in the channel before posting again. `muted`, `suppressed` and `history` rows were never
meant to be posted; they record what a silence, a failed ingestion, or an hour older than
`alerts.page_max_age_hours` / a backfill (summarized in one `backfill:<id>` message) kept quiet.
"""

import json
from dataclasses import dataclass
from datetime import datetime

import duckdb

from monitoring_pipeline.lib.db import one

DDL = [
    "CREATE SEQUENCE IF NOT EXISTS notification_order",
    """CREATE TABLE IF NOT EXISTS incidents (
        incident_id VARCHAR PRIMARY KEY,     -- check|asset|scope
        check_name VARCHAR NOT NULL,
        asset VARCHAR NOT NULL,
        scope VARCHAR NOT NULL,              -- 'all' or a model
        severity VARCHAR NOT NULL,           -- WARN | ERROR
        state VARCHAR NOT NULL,              -- firing | resolved
        opened_at TIMESTAMP NOT NULL,
        first_partition VARCHAR,
        last_partition VARCHAR,
        value DOUBLE,
        threshold DOUBLE,
        sample_size BIGINT,
        last_notified_at TIMESTAMP,          -- NULL: nobody was told yet (new, or muted so far)
        resolved_at TIMESTAMP
    )""",
    """CREATE TABLE IF NOT EXISTS notifications (
        notification_id VARCHAR PRIMARY KEY, -- deterministic: a re-read run makes the same ids
        seq BIGINT NOT NULL DEFAULT nextval('notification_order'),  -- delivery order
        created_at TIMESTAMP NOT NULL,
        kind VARCHAR NOT NULL,               -- checks | run_failure | missing_logs | backfill | test
        channel VARCHAR NOT NULL,
        checks VARCHAR[] NOT NULL,           -- the checks the message is about
        payload JSON NOT NULL,               -- {"text": ..., "blocks": [...]}
        status VARCHAR NOT NULL,             -- pending | posting | sent | muted | suppressed | history
        attempts INTEGER NOT NULL DEFAULT 0,
        failures INTEGER NOT NULL DEFAULT 0,
        not_before TIMESTAMP,
        last_attempt_at TIMESTAMP,
        last_error VARCHAR,
        sent_at TIMESTAMP,
        slack_ts VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS silences (
        silence_id VARCHAR PRIMARY KEY,
        check_name VARCHAR,                  -- NULL: any check
        model VARCHAR,                       -- NULL: any scope
        until TIMESTAMP NOT NULL,
        reason VARCHAR,
        created_at TIMESTAMP NOT NULL
    )""",
    "CREATE TABLE IF NOT EXISTS processed_runs (run_id VARCHAR PRIMARY KEY, processed_at TIMESTAMP NOT NULL)",
    "CREATE TABLE IF NOT EXISTS missing_hours (partition VARCHAR PRIMARY KEY, reported_at TIMESTAMP NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sensor_cursors (name VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
    """CREATE TABLE IF NOT EXISTS backfills (     -- what a backfill's runs found, for its one summary
        backfill_id VARCHAR PRIMARY KEY,
        runs INTEGER NOT NULL,               -- finished runs read so far
        hours INTEGER NOT NULL,              -- hours those runs covered (a ranged run covers many)
        failed_runs INTEGER NOT NULL,
        first_partition VARCHAR,
        last_partition VARCHAR,
        incidents VARCHAR[] NOT NULL,        -- incidents its runs opened or kept firing
        summarized_at TIMESTAMP              -- NULL until its summary is written
    )""",
]

DELIVERABLE = ("pending", "posting")


@dataclass(frozen=True)
class Notification:
    notification_id: str
    channel: str
    text: str
    blocks: list
    status: str = "pending"
    failures: int = 0
    last_attempt_at: datetime | None = None


def ensure(conn: duckdb.DuckDBPyConnection) -> None:
    for ddl in DDL:
        conn.execute(ddl)


def get_cursor(conn: duckdb.DuckDBPyConnection, name: str) -> str | None:
    row = conn.execute("SELECT value FROM sensor_cursors WHERE name = $name", {"name": name}).fetchone()
    return row[0] if row else None


def set_cursor(conn: duckdb.DuckDBPyConnection, name: str, value: str) -> None:
    conn.execute("INSERT OR REPLACE INTO sensor_cursors VALUES ($name, $value)", {"name": name, "value": value})


def record(
    conn: duckdb.DuckDBPyConnection,
    notification_id: str,
    kind: str,
    channel: str,
    checks: list[str],
    text: str,
    blocks: list,
    now: datetime,
    status: str = "pending",
) -> bool:
    """Write a message to the log (to post, or as muted/suppressed). Known ids are left alone.
    Returns whether it was new."""
    inserted = conn.execute(
        "INSERT OR IGNORE INTO notifications (notification_id, created_at, kind, channel, checks, payload, status)"
        " VALUES ($id, $now, $kind, $channel, $checks, $payload, $status) RETURNING 1",
        {
            "id": notification_id,
            "now": now,
            "kind": kind,
            "channel": channel,
            "checks": checks,
            "payload": json.dumps({"text": text, "blocks": blocks}),
            "status": status,
        },
    ).fetchall()
    return bool(inserted)


def due(conn: duckdb.DuckDBPyConnection, now: datetime) -> list[Notification]:
    rows = conn.execute(
        "SELECT notification_id, channel, payload, status, failures, last_attempt_at FROM notifications"
        " WHERE status IN ('pending', 'posting') AND (not_before IS NULL OR not_before <= $now)"
        " ORDER BY seq",
        {"now": now},
    ).fetchall()
    return [
        Notification(r[0], r[1], json.loads(r[2])["text"], json.loads(r[2])["blocks"], r[3], r[4], r[5]) for r in rows
    ]


def waiting(conn: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(messages not yet delivered, the most failures any of them has had)."""
    return one(
        conn, "SELECT count(*), coalesce(max(failures), 0) FROM notifications WHERE status IN ('pending', 'posting')"
    )


def mark_posting(conn: duckdb.DuckDBPyConnection, notification_id: str, now: datetime) -> None:
    """Written (and committed) before the request goes out: a crash after it leaves the trace."""
    conn.execute(
        "UPDATE notifications SET status = 'posting', attempts = attempts + 1, last_attempt_at = $now"
        " WHERE notification_id = $id",
        {"id": notification_id, "now": now},
    )


def mark_sent(conn: duckdb.DuckDBPyConnection, notification_id: str, now: datetime, slack_ts: str | None) -> None:
    conn.execute(
        "UPDATE notifications SET status = 'sent', sent_at = $now, slack_ts = $ts, last_error = NULL, not_before = NULL"
        " WHERE notification_id = $id",
        {"id": notification_id, "now": now, "ts": slack_ts},
    )


def mark_failed(
    conn: duckdb.DuckDBPyConnection, notification_id: str, error: str, not_before: datetime | None, outcome_known: bool
) -> None:
    """A failed attempt. Known not delivered -> pending again; unknown -> stays posting, to be looked for."""
    conn.execute(
        "UPDATE notifications SET failures = failures + 1, last_error = $error, not_before = $not_before,"
        " status = CASE WHEN $known THEN 'pending' ELSE 'posting' END WHERE notification_id = $id",
        {"id": notification_id, "error": error[:500], "not_before": not_before, "known": outcome_known},
    )


def run_processed(conn: duckdb.DuckDBPyConnection, run_id: str) -> bool:
    return one(conn, "SELECT count(*) FROM processed_runs WHERE run_id = $id", {"id": run_id})[0] > 0


def mark_run_processed(conn: duckdb.DuckDBPyConnection, run_id: str, now: datetime) -> None:
    conn.execute("INSERT OR IGNORE INTO processed_runs VALUES ($id, $now)", {"id": run_id, "now": now})


def record_missing_hour(conn: duckdb.DuckDBPyConnection, partition: str, now: datetime) -> bool:
    """Remember that an hour's missing logs were reported; False if they already were."""
    return bool(
        conn.execute(
            "INSERT OR IGNORE INTO missing_hours VALUES ($p, $now) RETURNING 1", {"p": partition, "now": now}
        ).fetchall()
    )
