"""The jobs people see in the runs list (and in alerts): hourly_monitoring and the schedule that runs
it after each hour closes, and review_verdicts_job, which the review inbox sensor starts."""

import dagster as dg

hourly_monitoring = dg.define_asset_job(
    "hourly_monitoring",
    selection=dg.AssetSelection.groups("ingest", "metrics", "review"),
    description="Ingest one hour of LLM logs, compute its metrics and checks, draw its review sample.",
    # Its steps take turns on the DuckDB file anyway (pool "duckdb"), so one process per run
    # instead of one per step: a 168-hour backfill starts 168 processes, not 672.
    executor_def=dg.in_process_executor,
)

# Ten minutes past the hour, for the hour that just closed: late writers get time to flush.
hourly_monitoring_schedule = dg.build_schedule_from_partitioned_job(
    hourly_monitoring,
    name="hourly_monitoring_schedule",
    minute_of_hour=10,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

# The review inbox sensor's runs: named, so the runs list and a failed-run alert say what ran
# (an asset selection on the sensor would run as `__anonymous_asset_job_review_inbox_sensor`).
review_verdicts_job = dg.define_asset_job(
    "review_verdicts_job",
    selection=dg.AssetSelection.assets("review_verdicts", "human_quality", "judge_agreement"),
    description="Load reviewer verdict files from the inbox and recompute human_quality and judge_agreement.",
)
