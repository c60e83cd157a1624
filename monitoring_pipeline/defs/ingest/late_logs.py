"""late_logs_sensor: re-runs an hour that was already materialized when its log files change."""

import hashlib
import json
import re
from datetime import datetime, timezone

import dagster as dg

from monitoring_pipeline.defs.jobs import hourly_monitoring
from monitoring_pipeline.lib.partitions import partition_key
from monitoring_pipeline.resources import LOG_PATTERNS, LogSource

HOUR_FOLDER = re.compile(r"dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})$")


def hour_fingerprints(logs: LogSource) -> dict[str, str]:
    """Partition key -> a digest of (name, size, mtime) of every log file in that hour's folder.
    A file that appears, grows, is rewritten or removed changes its hour's digest."""
    fingerprints = {}
    for folder in logs.root.glob("dt=*/hour=*"):
        match = HOUR_FOLDER.search(folder.as_posix())
        if not match or not folder.is_dir():
            continue
        hour = datetime.fromisoformat(f"{match[1]}T{match[2]}:00").replace(tzinfo=timezone.utc)
        files = sorted(p for pattern in LOG_PATTERNS for p in folder.glob(pattern) if p.is_file())
        stats = [(p.name, s.st_size, s.st_mtime_ns) for p in files for s in [p.stat()]]
        fingerprints[partition_key(hour)] = hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:16]
    return fingerprints


@dg.sensor(
    job=hourly_monitoring,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-runs hourly_monitoring for an already materialized hour whose log files appeared or changed.",
)
def late_logs_sensor(context: dg.SensorEvaluationContext, logs: LogSource):
    if logs.is_remote:
        return dg.SkipReason(f"{logs.location} is an object store: use its event notifications instead.")
    current = hour_fingerprints(logs)
    if context.cursor is None:
        context.update_cursor(json.dumps(current))
        return dg.SkipReason(f"Baseline: {len(current)} hour folders fingerprinted.")
    seen = json.loads(context.cursor)
    changed = sorted(key for key, digest in current.items() if seen.get(key) != digest)
    # Hours never materialized are the schedule's (or a backfill's) to run, not this sensor's.
    materialized = context.instance.get_materialized_partitions(dg.AssetKey("llm_requests")) if changed else set()
    requests = [
        dg.RunRequest(
            partition_key=key, run_key=f"late_logs:{key}:{current[key]}", tags={"monitoring/trigger": "late_logs"}
        )
        for key in changed
        if key in materialized
    ]
    context.update_cursor(json.dumps(current))
    if not requests:
        return dg.SkipReason(f"{len(changed)} hour folder(s) changed, none of them already materialized.")
    context.log.info(f"Late or changed logs in {', '.join(str(r.partition_key) for r in requests)}")
    return requests
