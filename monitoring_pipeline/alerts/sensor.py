"""slack_alert_sensor: failed check evaluations -> the notification log -> Slack."""

import dagster as dg

from monitoring_pipeline.alerts import outbox
from monitoring_pipeline.alerts.delivery import AlertDelivery, DeliveryError
from monitoring_pipeline.alerts.evaluations import new_failed_checks
from monitoring_pipeline.alerts.messages import failed_check_message
from monitoring_pipeline.resources import DuckDBWarehouse, MonitoringSettings

MAX_POSTS_PER_TICK = 20  # Slack allows about one message per second per channel


@dg.sensor(
    name="slack_alert_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts each failed check evaluation to Slack once; retries what Slack did not take.",
)
def slack_alert_sensor(
    context: dg.SensorEvaluationContext,
    alert_state: DuckDBWarehouse,
    alert_delivery: AlertDelivery,
    settings: MonitoringSettings,
) -> dg.SkipReason:
    config = settings.load()
    failed, next_cursor = new_failed_checks(context.instance, context.cursor)
    alerts = []
    for check in failed:
        text, blocks = failed_check_message(check, config.alerts.dagster_url)
        alerts.append(outbox.Alert(check.alert_id, config.alerts.channel, text, blocks))
    with alert_state.get_connection() as conn:
        outbox.ensure(conn)
        new = outbox.enqueue(conn, alerts)
        # The cursor is saved only when the tick returns; the outbox already holds what it found.
        context.update_cursor(next_cursor)
        sent, waiting, error = 0, outbox.pending(conn), None
        for alert in waiting[:MAX_POSTS_PER_TICK]:
            try:
                alert_delivery.send(alert.channel, alert.text, alert.blocks, config.alerts.dry_run_file)
            except DeliveryError as err:
                outbox.mark_failed(conn, alert.alert_id, str(err))
                error = f"{alert.alert_id}: {err} (attempt {alert.attempts + 1})"
                break  # Slack is down or limiting us: try again next tick, in order
            outbox.mark_sent(conn, alert.alert_id)
            sent += 1
    summary = f"{new} new alert(s), {sent} delivered to {alert_delivery.destination(config.alerts.dry_run_file)}, {len(waiting) - sent} pending"
    if error:
        context.log.error(f"Alert delivery failed, will retry: {error}")
        summary += f"; last error: {error}"
    elif sent or new:
        context.log.info(summary)
    return dg.SkipReason(summary)
