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


hourly_partitions = dg.HourlyPartitionsDefinition(start_date=f"{partitions_start()}-00:00", timezone="UTC")


def partition_key(hour: datetime) -> str:
    """The partition key of the hour containing `hour` (any time zone)."""
    return hour.astimezone(timezone.utc).strftime("%Y-%m-%d-%H:00")
