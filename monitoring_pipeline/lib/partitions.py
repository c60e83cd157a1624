"""Hourly UTC partitions: one per closed hour of logs."""

import os
from datetime import datetime, timezone

import dagster as dg

DEFAULT_START = "2026-01-01"


def partitions_start() -> str:
    """MONITORING_PARTITIONS_START (an ISO date) so history can be backfilled from any day."""
    start = os.environ.get("MONITORING_PARTITIONS_START", DEFAULT_START)
    datetime.fromisoformat(start)  # a clear error for a bad value, at load time
    return start


def partitions_end() -> str | None:
    """MONITORING_PARTITIONS_END (an ISO date, the first day without partitions), or None: no end.
    A fixed data set (the demo's day) sets it so no schedule or sensor acts on hours past its data."""
    end = os.environ.get("MONITORING_PARTITIONS_END") or None
    if end is not None:
        datetime.fromisoformat(end)
    return end


def build_hourly_partitions() -> dg.HourlyPartitionsDefinition:
    end = partitions_end()
    return dg.HourlyPartitionsDefinition(
        start_date=f"{partitions_start()}-00:00", end_date=f"{end}-00:00" if end else None, timezone="UTC"
    )


hourly_partitions = build_hourly_partitions()


def in_partitions(hour: datetime, partitions_def: dg.TimeWindowPartitionsDefinition = hourly_partitions) -> bool:
    """Whether the hour starting at `hour` (naive = UTC) is one of the partitions: at or after the
    start and, when the partitions end, before the end."""
    hour = hour if hour.tzinfo else hour.replace(tzinfo=timezone.utc)
    end = partitions_def.end
    return hour >= partitions_def.start and (end is None or hour < end)


def partition_key(hour: datetime) -> str:
    """The partition key of the hour containing `hour` (any time zone)."""
    return hour.astimezone(timezone.utc).strftime("%Y-%m-%d-%H:00")
