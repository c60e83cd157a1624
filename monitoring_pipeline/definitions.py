"""The one Definitions of the monitoring pipeline: every asset, check, job, schedule and sensor,
listed by domain (monitoring_pipeline/defs/<domain>/)."""

import dagster as dg

from monitoring_pipeline.config import get_config
from monitoring_pipeline.defs.alerts.assets import alert_incidents
from monitoring_pipeline.defs.alerts.sensors import slack_alert_sensor
from monitoring_pipeline.defs.baselines.assets import metric_anomalies
from monitoring_pipeline.defs.evaluation.assets import evaluation_assets
from monitoring_pipeline.defs.ingest.assets import llm_requests
from monitoring_pipeline.defs.ingest.late_logs import late_logs_sensor
from monitoring_pipeline.defs.ingest.logs import llm_logs
from monitoring_pipeline.defs.ingest.missing_logs import missing_logs_sensor
from monitoring_pipeline.defs.jobs import hourly_monitoring, hourly_monitoring_schedule, review_verdicts_job
from monitoring_pipeline.defs.maintenance.retention import (
    storage_retention,
    storage_retention_job,
    storage_retention_schedule,
)
from monitoring_pipeline.defs.metrics.assets import hourly_metrics
from monitoring_pipeline.defs.review.human_quality import human_quality
from monitoring_pipeline.defs.review.inbox import review_inbox_sensor
from monitoring_pipeline.defs.review.judge import judge_verdicts
from monitoring_pipeline.defs.review.judge_agreement import judge_agreement
from monitoring_pipeline.defs.review.sample import review_sample
from monitoring_pipeline.defs.review.verdicts_asset import review_verdicts
from monitoring_pipeline.resources import build_resources

defs = dg.Definitions(
    assets=[
        llm_logs,  # ingest: the raw files (a source, never materialized)
        llm_requests,  # ingest (llm_requests + quarantine)
        hourly_metrics,  # metrics (hourly_metrics + hourly_model_metrics)
        # evaluation (evaluation_flags + hourly_evaluations): the config's custom evaluators declare
        # their checks, so a bad evaluator fails the code location's load, naming it
        evaluation_assets(get_config()),
        metric_anomalies,  # baselines (anomaly and SLO burn checks)
        review_sample,  # review
        review_verdicts,
        human_quality,
        judge_verdicts,
        judge_agreement,
        storage_retention,  # maintenance
        alert_incidents,  # alerts (reported by slack_alert_sensor)
    ],
    jobs=[hourly_monitoring, review_verdicts_job, storage_retention_job],
    schedules=[hourly_monitoring_schedule, storage_retention_schedule],
    sensors=[late_logs_sensor, missing_logs_sensor, review_inbox_sensor, slack_alert_sensor],
    resources=build_resources(),
)
