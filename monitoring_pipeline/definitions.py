"""The one Definitions of the monitoring pipeline."""

import dagster as dg

from monitoring_pipeline.alerts.delivery import AlertDelivery
from monitoring_pipeline.alerts.sensor import missing_logs_sensor, slack_alert_sensor
from monitoring_pipeline.assets.human_quality import human_quality
from monitoring_pipeline.assets.ingest import llm_requests
from monitoring_pipeline.assets.metrics import hourly_metrics
from monitoring_pipeline.assets.retention import storage_retention
from monitoring_pipeline.assets.review import review_sample
from monitoring_pipeline.assets.review_verdicts import review_verdicts
from monitoring_pipeline.jobs import (
    hourly_monitoring,
    hourly_monitoring_schedule,
    storage_retention_job,
    storage_retention_schedule,
)
from monitoring_pipeline.resources import Clock, DuckDBWarehouse, LogSource, MonitoringSettings
from monitoring_pipeline.review.inbox import review_inbox_sensor
from monitoring_pipeline.sensors.late_logs import late_logs_sensor


def build_resources() -> dict:
    """Paths come from MONITORING_* variables, read when a resource is used, not at import."""
    return {
        "warehouse": DuckDBWarehouse(),
        "alert_state": DuckDBWarehouse(env_var="MONITORING_ALERTS_DB", default_database="data/alerts.duckdb"),
        "logs": LogSource(),
        "settings": MonitoringSettings(),
        "alert_delivery": AlertDelivery(),
        "clock": Clock(),
    }


defs = dg.Definitions(
    assets=[llm_requests, hourly_metrics, review_sample, review_verdicts, human_quality, storage_retention],
    jobs=[hourly_monitoring, storage_retention_job],
    schedules=[hourly_monitoring_schedule, storage_retention_schedule],
    sensors=[slack_alert_sensor, missing_logs_sensor, late_logs_sensor, review_inbox_sensor],
    resources=build_resources(),
)
