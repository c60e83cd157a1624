"""Backfills and old hours: recorded, not paged.

A first backfill of weeks of history would page for every incident it finds, and a re-run of an
old hour would announce what was over long ago. So check results of hours that closed more than
`alerts.page_max_age_hours` ago, and every run of a backfill (run tag `dagster/backfill`), move
incidents and are written to the notification log with status `history`, unposted. A backfill
instead gets one message, `backfill:<id>`, once its runs are all finished and read.
"""

from datetime import datetime, timedelta

import dagster as dg
import duckdb

from monitoring_pipeline.config import MonitoringConfig
from monitoring_pipeline.defs.alerts import outbox
from monitoring_pipeline.defs.alerts.incidents import failing_scopes, incident_id
from monitoring_pipeline.defs.alerts.messages import hour_label, simple_message
from monitoring_pipeline.defs.alerts.runs import FinishedRun
from monitoring_pipeline.lib.db import one

BACKFILL_TAG = "dagster/backfill"
IN_PROGRESS = ("REQUESTED", "CANCELING", "FAILING")  # BulkActionStatus values of a backfill still launching runs
UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE]


def held(run: FinishedRun, config: MonitoringConfig, now: datetime) -> str | None:
    """Why this run's alerts are recorded and not posted, or None to post them."""
    if run.backfill:
        return f"backfill {run.backfill}, summarized in one message when it is done"
    if not run.partition:
        return None
    try:
        closed = datetime.strptime(run.partition, "%Y-%m-%d-%H:%M") + timedelta(hours=1)
    except ValueError:
        return None
    max_age = config.alerts.page_max_age_hours
    if now - closed > timedelta(hours=max_age):
        return f"history: {hour_label(run.partition)} closed more than {max_age:g} h before"
    return None


def track(conn: duckdb.DuckDBPyConnection, run: FinishedRun) -> None:
    """Add one finished run of a backfill to what its summary will say."""
    found = sorted({incident_id(e.check, e.asset, scope) for e in run.evaluations for scope in failing_scopes(e)})
    first, last, hours = run.hours
    conn.execute(
        """INSERT INTO backfills VALUES ($id, 1, $hours, $failed, $first, $last, $found, NULL)
           ON CONFLICT (backfill_id) DO UPDATE SET
               runs = backfills.runs + 1,
               hours = backfills.hours + $hours,
               failed_runs = backfills.failed_runs + $failed,
               first_partition = least(coalesce(backfills.first_partition, $first), coalesce($first, backfills.first_partition)),
               last_partition = greatest(coalesce(backfills.last_partition, $last), coalesce($last, backfills.last_partition)),
               incidents = list_distinct(list_concat(backfills.incidents, $found))""",
        {"id": run.backfill, "hours": hours, "failed": int(run.failed), "first": first, "last": last, "found": found},
    )


def _done(instance: dg.DagsterInstance, backfill_id: str, read: int) -> bool:
    """The backfill launches no more runs, none is still running, and every finished one was read."""
    backfill = instance.get_backfill(backfill_id)
    if backfill is not None and backfill.status.value in IN_PROGRESS:
        return False
    tags = {BACKFILL_TAG: backfill_id}
    if instance.get_runs_count(dg.RunsFilter(tags=tags, statuses=UNFINISHED)):
        return False
    return read >= instance.get_runs_count(dg.RunsFilter(tags=tags, statuses=FINISHED))


def summarize(
    conn: duckdb.DuckDBPyConnection, instance: dg.DagsterInstance, config: MonitoringConfig, now: datetime
) -> int:
    """Write the one message of each backfill that is done. Returns how many were written."""
    written = 0
    pending = conn.execute(
        "SELECT backfill_id, runs, hours, failed_runs, first_partition, last_partition, incidents FROM backfills"
        " WHERE summarized_at IS NULL ORDER BY backfill_id"
    ).fetchall()
    for backfill_id, runs, hours, failed_runs, first, last, found in pending:
        if not _done(instance, backfill_id, runs):
            continue
        (firing,) = one(
            conn,
            "SELECT count(*) FROM incidents WHERE state = 'firing' AND list_contains($found, incident_id)",
            {"found": found},
        )
        span = f" ({hour_label(first)} .. {hour_label(last)})" if first else ""
        current = f"{firing} still firing (`monitoring-pipeline incidents`)" if firing else "none current"
        text, blocks = simple_message(
            f"Backfill {backfill_id} of {hours} hour(s) done: {len(found)} incident(s), {current}",
            [
                f"{runs} run(s){span}, {failed_runs} failed.",
                f"{len(found)} incident(s) found: {current}. Their check results are recorded in the "
                "notification log (status `history`), not posted one by one.",
            ],
            f"{config.alerts.dagster_url.rstrip('/')}/runs/b/{backfill_id}?tab=runs",
        )
        written += outbox.record(
            conn, f"backfill:{backfill_id}", "backfill", config.alerts.channel, [], text, blocks, now
        )
        conn.execute(
            "UPDATE backfills SET summarized_at = $now WHERE backfill_id = $id", {"id": backfill_id, "now": now}
        )
    return written
