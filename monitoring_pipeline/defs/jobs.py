"""The jobs people see in the runs list (and in alerts): hourly_monitoring and the schedule that runs
it after each hour closes, and review_verdicts_job, which the review inbox sensor starts."""

from datetime import datetime, timedelta, timezone

import dagster as dg

from monitoring_pipeline.lib.partitions import hourly_partitions, in_partitions, partition_key

hourly_monitoring = dg.define_asset_job(
    "hourly_monitoring",
    selection=dg.AssetSelection.groups("ingest", "metrics", "evaluation", "baselines", "review"),
    description="Ingest one hour of LLM logs, compute its metrics, evaluate every call, judge them against their thresholds and baselines, draw its review sample.",
    # Its steps take turns on the DuckDB file anyway (pool "duckdb"), so one process per run
    # instead of one per step: a 168-hour backfill starts 168 processes, not 672.
    executor_def=dg.in_process_executor,
)


# Ten minutes past the hour, for the hour that just closed: late writers get time to flush.
@dg.schedule(
    name="hourly_monitoring_schedule",
    job=hourly_monitoring,
    cron_schedule="10 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Runs hourly_monitoring at ten past each hour for the hour that just closed.",
)
def hourly_monitoring_schedule(context: dg.ScheduleEvaluationContext):
    # Not build_schedule_from_partitioned_job: past the partitions' end (MONITORING_PARTITIONS_END,
    # the demo's day) it re-requests the last partition every hour instead of resting.
    now = context.scheduled_execution_time or datetime.now(timezone.utc)
    hour = (now - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    key = partition_key(hour)
    if not in_partitions(hour, hourly_partitions):
        return dg.SkipReason(f"{key} is not a partition (MONITORING_PARTITIONS_START/_END): nothing to run.")
    return dg.RunRequest(run_key=key, partition_key=key)


# The review inbox sensor's runs: named, so the runs list and a failed-run alert say what ran
# (an asset selection on the sensor would run as `__anonymous_asset_job_review_inbox_sensor`).
review_verdicts_job = dg.define_asset_job(
    "review_verdicts_job",
    selection=dg.AssetSelection.assets("review_verdicts", "human_quality", "judge_agreement"),
    description="Load reviewer verdict files from the inbox and recompute human_quality and judge_agreement.",
)
