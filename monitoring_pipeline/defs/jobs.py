"""The hourly_monitoring job and the schedule that runs it after each hour closes."""

import dagster as dg

hourly_monitoring = dg.define_asset_job(
    "hourly_monitoring",
    selection=dg.AssetSelection.groups("ingest", "metrics", "baselines", "review"),
    description="Ingest one hour of LLM logs, compute its metrics and checks, judge them against their baselines, draw its review sample.",
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
