"""slack_alert_sensor: finished runs -> incidents -> messages -> Slack.

The alert sensors. They write what to say to the notification log; `slack_alert_sensor` also
delivers everything the log holds, so every alert (checks, failed runs, missing logs, tests) gets
the same guarantees: written before it is posted, retried until Slack takes it, never posted twice.
"""

from collections import defaultdict
from datetime import datetime, timedelta

import dagster as dg
import duckdb

from monitoring_pipeline.config import MonitoringConfig
from monitoring_pipeline.defs.alerts import backfills, outbox
from monitoring_pipeline.defs.alerts.assets import incidents_event
from monitoring_pipeline.defs.alerts.delivery import AlertDelivery, DeliveryError, redact
from monitoring_pipeline.defs.alerts.incidents import Notice, active_silences, apply
from monitoring_pipeline.defs.alerts.messages import checks_message, hour_label, run_link, simple_message
from monitoring_pipeline.defs.alerts.runs import INGEST_ASSET, FinishedRun, finished_runs
from monitoring_pipeline.lib.db import transaction
from monitoring_pipeline.resources import Clock, DuckDBWarehouse, MonitoringSettings

FAILED_CHECKS_TAG = "monitoring/failed_checks"
MAX_POSTS_PER_TICK = 20  # Slack allows about one message per second per channel


class AlertDeliveryFailing(Exception):
    """Raised at the end of a tick (after its work is saved) so the tick shows as failed in the UI."""


def record_run(
    conn: duckdb.DuckDBPyConnection, run: FinishedRun, config: MonitoringConfig, now: datetime, silences
) -> int:
    """Move incidents by one finished run and write its messages (one per channel). Returns how many to post."""
    notices: list[Notice] = []
    suppressed: list[str] = []
    hold = backfills.held(run, config, now)
    for evaluation in run.evaluations:
        if run.ingest_failed and evaluation.asset != INGEST_ASSET:
            suppressed.append(evaluation.check)  # the ingestion alert (the failed run) says it all
            continue
        notices.extend(apply(conn, evaluation, config, now, silences, hold))
    if run.backfill:
        backfills.track(conn, run)
    title = f"{run.job_name}, {hour_label(run.partition)}" if run.partition else run.job_name
    new = 0
    if run.failed:
        steps = ", ".join(run.failed_steps) or "none (the run did not start or crashed)"
        text, blocks = simple_message(
            f"Run failed: {title}",
            [
                f"Failed steps: {steps}.",
                redact((run.failure or "").strip()[:500]),  # a step's error may quote a credential
                *(
                    [f"Checks not alerted on top of the failed ingestion: {', '.join(sorted(set(suppressed)))}."]
                    if suppressed
                    else []
                ),
            ],
            run_link(config.alerts.dagster_url, run.run_id),
        )
        # A failed run is news whatever hour it ran, except inside a backfill: its summary counts them.
        in_backfill = run.backfill is not None
        new += (
            outbox.record(
                conn,
                f"run_failure:{run.run_id}",
                "run_failure",
                config.alerts.channel,
                [INGEST_ASSET] if run.ingest_failed else [],
                f"NOT POSTED ({hold}) | {text}" if in_backfill else text,
                blocks,
                now,
                "history" if in_backfill else "pending",
            )
            and not in_backfill
        )
    by_channel: dict[tuple[str, str], list[Notice]] = defaultdict(list)
    for n in notices:
        channel = config.alerts.critical_channel if n.critical else config.alerts.channel
        status = "history" if hold else "muted" if n.silenced_by is not None else "pending"
        by_channel[(channel, status)].append(n)
    for (channel, status), group in sorted(by_channel.items()):
        text, blocks = checks_message(group, config.alerts.dagster_url, title, run.run_id)
        if status != "pending":
            why = "; ".join(sorted({n.silenced_by or "" for n in group}))
            text = f"{'MUTED (not posted)' if status == 'muted' else 'NOT POSTED'}: {why} | {text}"
        new += (
            outbox.record(
                conn,
                f"{run.run_id}:{channel}{'' if status == 'pending' else ':' + status}",
                "checks",
                channel,
                sorted({n.check for n in group}),
                text,
                blocks,
                now,
                status,
            )
            and status == "pending"
        )
    return new


def tag_failed_checks(instance: dg.DagsterInstance, run: FinishedRun) -> None:
    """Tag a run with the checks that failed in it (every asset's, whichever job), so the runs list
    shows which hours are in trouble. Setting the same tag again is harmless: a re-read run is fine."""
    if run.evaluations:
        failed = sorted({e.check for e in run.evaluations if not e.passed})
        instance.add_run_tags(run.run_id, {FAILED_CHECKS_TAG: ",".join(failed)})


def deliver(
    conn: duckdb.DuckDBPyConnection, delivery: AlertDelivery, config: MonitoringConfig, now: datetime, logger
) -> tuple[int, str | None]:
    """Post what is due, oldest first, stopping at the first failure. Returns (delivered, last error)."""
    sent = 0
    for n in outbox.due(conn, now)[:MAX_POSTS_PER_TICK]:
        if n.status == "posting":  # an earlier attempt may have landed: look before posting again
            try:
                found = delivery.find_posted(
                    n.notification_id, n.channel, n.last_attempt_at, config.alerts.dry_run_file
                )
            except DeliveryError as err:
                outbox.mark_failed(conn, n.notification_id, f"checking whether it was posted: {err}", None, False)
                return sent, f"{n.notification_id}: {err}"
            if found:
                logger.info(f"{n.notification_id} was already posted by an earlier attempt; not posting again")
                outbox.mark_sent(conn, n.notification_id, now, None)
                sent += 1
                continue
        outbox.mark_posting(conn, n.notification_id, now)
        try:
            ts = delivery.send(n.notification_id, n.channel, n.text, n.blocks, config.alerts.dry_run_file)
        except DeliveryError as err:
            wait = None if err.retry_after_s is None else min(err.retry_after_s, config.alerts.retry_after_cap_s)
            outbox.mark_failed(
                conn, n.notification_id, str(err), now + timedelta(seconds=wait) if wait else None, err.outcome_known
            )
            return sent, f"{n.notification_id}: {err} (failure {n.failures + 1})"
        outbox.mark_sent(conn, n.notification_id, now, ts)
        sent += 1
    return sent, None


@dg.sensor(
    name="slack_alert_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Turns finished runs (check results, failures) into incidents and messages, and delivers "
    "every message in the notification log to Slack: once, retried until Slack takes it.",
)
def slack_alert_sensor(
    context: dg.SensorEvaluationContext,
    alert_state: DuckDBWarehouse,
    alert_delivery: AlertDelivery,
    settings: MonitoringSettings,
    clock: Clock,
) -> dg.SensorResult:
    config = settings.load()
    now = clock.now()
    with alert_state.get_connection() as conn:
        outbox.ensure(conn)
        # The run cursor lives in the notification log, written in the same transaction as what the
        # runs produced: a crash re-reads nothing twice and skips nothing.
        runs, next_cursor, reset = finished_runs(context.instance, outbox.get_cursor(conn, "runs"))
        if reset:
            # Runs already alerted on are in processed_runs: starting over repeats no alert.
            context.log.warning(f"Run cursor reset: {reset}; reading this instance's runs from the start")
        with transaction(conn):
            silences = active_silences(conn, config, now)
            new = 0
            for run in runs:
                if not outbox.run_processed(conn, run.run_id):
                    new += record_run(conn, run, config, now, silences)
                    outbox.mark_run_processed(conn, run.run_id, now)
            new += backfills.summarize(conn, context.instance, config, now)
            incidents_changed = incidents_event(conn)
            outbox.set_cursor(conn, "runs", next_cursor)
        for run in runs:
            tag_failed_checks(context.instance, run)
        sent, error = deliver(conn, alert_delivery, config, now, context.log)
        waiting, worst = outbox.waiting(conn)
    summary = (
        f"{len(runs)} run(s) read, {new} new message(s), {sent} delivered to "
        f"{alert_delivery.destination(config.alerts.dry_run_file)}, {waiting} waiting"
    )
    if reset:
        summary += "; run cursor reset (new Dagster instance)"
    if error:
        context.log.error(f"Alert delivery failed, will retry: {error}")
        summary += f"; last error: {error}"
    if worst >= config.alerts.loud_after_failed_ticks:
        message = (
            f"ALERTS ARE NOT GETTING THROUGH: {waiting} message(s) waiting, one has failed {worst} times. {summary}"
        )
        context.log.error(message)
        raise AlertDeliveryFailing(message)
    if sent or new:
        context.log.info(summary)
    return dg.SensorResult(
        skip_reason=summary, asset_events=[incidents_changed] if incidents_changed is not None else []
    )
