"""The hourly_monitoring job and the schedule that runs it after each hour closes."""

import dagster as dg


hourly_monitoring = dg.define_asset_job(
    "hourly_monitoring",
    selection=dg.AssetSelection.groups("ingest", "metrics", "review"),
    description="Ingest one hour of LLM logs, compute its metrics and checks, draw its review sample.",
)

# Ten minutes past the hour, for the hour that just closed: late writers get time to flush.
hourly_monitoring_schedule = dg.build_schedule_from_partitioned_job(
    hourly_monitoring,
    name="hourly_monitoring_schedule",
    minute_of_hour=10,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
