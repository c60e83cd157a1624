"""alert_incidents: the alert side in the asset catalog, downstream of the checked assets.

Nothing materializes it in a run: slack_alert_sensor reports it (an AssetMaterialization from the
sensor) whenever the open incidents change, so "what is firing now" is one click in the catalog.
"""

import hashlib
import json

import dagster as dg
import duckdb

from monitoring_pipeline.defs.alerts import outbox
from monitoring_pipeline.defs.alerts.incidents import open_incidents
from monitoring_pipeline.lib import markdown

ALERT_INCIDENTS = "alert_incidents"
MAX_ROWS = 200  # incidents listed in the table; the count is always complete

alert_incidents = dg.AssetSpec(
    ALERT_INCIDENTS,
    deps=[
        "llm_requests",
        "hourly_metrics",
        "hourly_evaluations",
        "metric_anomalies",
        "judge_verdicts",
        "human_quality",
        "judge_agreement",
    ],
    group_name="alerts",
    kinds={"duckdb"},
    description="Open incidents (check, scope, since, last hour, value vs threshold), reported by "
    "slack_alert_sensor whenever they change.",
)


def _num(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def incidents_event(conn: duckdb.DuckDBPyConnection) -> dg.AssetMaterialization | None:
    """A materialization of alert_incidents if the open incidents changed since the last one, else None.
    The fingerprint is saved with it; the caller commits both with the tick's work."""
    rows = open_incidents(conn)
    fingerprint = hashlib.sha256(json.dumps(rows, default=str).encode()).hexdigest()
    if outbox.get_cursor(conn, ALERT_INCIDENTS) == fingerprint:
        return None
    outbox.set_cursor(conn, ALERT_INCIDENTS, fingerprint)
    table = markdown.table(
        ["check", "asset", "scope", "severity", "since", "first hour", "last hour", "value", "threshold"],
        [
            (
                check,
                asset,
                scope,
                "CRITICAL" if severity == "ERROR" else "warning",
                f"{opened:%Y-%m-%d %H:%M}",
                first or "-",
                last or "-",
                _num(value),
                _num(threshold),
            )
            for check, asset, scope, severity, opened, first, last, value, threshold, *_ in rows[:MAX_ROWS]
        ],
    )
    if len(rows) > MAX_ROWS:
        table += f"\n\n…and {len(rows) - MAX_ROWS} more: `monitoring-pipeline incidents` lists all."
    return dg.AssetMaterialization(
        ALERT_INCIDENTS,
        description=f"{len(rows)} open incident(s)",
        metadata={
            "open_incidents": len(rows),
            "critical": sum(1 for row in rows if row[3] == "ERROR"),
            "incidents": dg.MetadataValue.md(table if rows else "No open incidents."),
        },
    )
