"""missing_logs_sensor: alerts when an hour has no log files by its deadline.

It writes its alert to the outbox; slack_alert_sensor delivers it with the same guarantees as
every other alert.
"""

from datetime import datetime, timedelta, timezone

import dagster as dg

from monitoring_pipeline.defs.alerts import outbox
from monitoring_pipeline.defs.alerts.messages import asset_link, hour_label, simple_message
from monitoring_pipeline.defs.alerts.runs import INGEST_ASSET
from monitoring_pipeline.lib.db import transaction
from monitoring_pipeline.lib.partitions import hourly_partitions, in_partitions, partition_key
from monitoring_pipeline.resources import Clock, DuckDBWarehouse, LogSource, MonitoringSettings


@dg.sensor(
    name="missing_logs_sensor",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts when an hour has no log files by its deadline (alerts.missing_logs_after_minutes).",
)
def missing_logs_sensor(
    context: dg.SensorEvaluationContext,
    alert_state: DuckDBWarehouse,
    logs: LogSource,
    settings: MonitoringSettings,
    clock: Clock,
) -> dg.SkipReason:
    config = settings.load()
    now = clock.now()
    deadline = timedelta(minutes=config.alerts.missing_logs_after_minutes)
    newest = (now - deadline - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    hours = [newest - timedelta(hours=i) for i in range(config.alerts.missing_logs_lookback_hours)]
    # Only hours that are partitions: none before MONITORING_PARTITIONS_START or past _END (the demo's day).
    missing = [h for h in hours if in_partitions(h, hourly_partitions) and not logs.files_for_hour(h)]
    with alert_state.get_connection() as conn:
        outbox.ensure(conn)
        with transaction(conn):
            new = [h for h in sorted(missing) if outbox.record_missing_hour(conn, _key(h), now)]
            if new:
                keys = [_key(h) for h in new]
                text, blocks = simple_message(
                    f"No logs arrived for {len(new)} hour(s)",
                    [
                        f"No *.jsonl(.gz) files under {logs.location} for: "
                        + ", ".join(hour_label(k) for k in keys)
                        + ".",
                        f"Deadline: {config.alerts.missing_logs_after_minutes} min after each hour closed. "
                        "Is the app logging? Is the log shipper running?",
                    ],
                    [(hour_label(k), asset_link(config.alerts.dagster_url, INGEST_ASSET, k)) for k in keys],
                )
                outbox.record(
                    conn,
                    f"missing_logs:{keys[0]}..{keys[-1]}",
                    "missing_logs",
                    config.alerts.channel,
                    ["missing_logs"],
                    text,
                    blocks,
                    now,
                )
    if new:
        context.log.warning(f"No logs for {len(new)} hour(s); alert queued for slack_alert_sensor")
    return dg.SkipReason(f"{len(missing)} hour(s) without logs in the last {len(hours)}, {len(new)} newly reported")


def _key(naive_utc_hour: datetime) -> str:
    return partition_key(naive_utc_hour.replace(tzinfo=timezone.utc))
