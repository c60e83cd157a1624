"""late_logs_sensor: re-runs an hour whose log files differ from what its last materialization read."""

import json
import re
from datetime import datetime, timezone

import dagster as dg

from monitoring_pipeline.defs.ingest.files import LOG_FINGERPRINT
from monitoring_pipeline.defs.jobs import hourly_monitoring
from monitoring_pipeline.lib.partitions import partition_key
from monitoring_pipeline.resources import LogSource, fingerprint, folder_files

HOUR_FOLDER = re.compile(r"dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})$")
LLM_REQUESTS = dg.AssetKey("llm_requests")


def hour_fingerprints(logs: LogSource) -> dict[str, str]:
    """Partition key -> a digest of (name, size, mtime) of every log file in that hour's folder,
    the same digest ingest records with each materialization."""
    fingerprints = {}
    for folder in logs.root.glob("dt=*/hour=*"):
        match = HOUR_FOLDER.search(folder.as_posix())
        if not match or not folder.is_dir():
            continue
        hour = datetime.fromisoformat(f"{match[1]}T{match[2]}:00").replace(tzinfo=timezone.utc)
        fingerprints[partition_key(hour)] = fingerprint(folder_files(folder))
    return fingerprints


def recorded_fingerprints(instance: dg.DagsterInstance, keys: list[str]) -> dict[str, str | None]:
    """Per hour, the fingerprint its latest materialization recorded (None: before it was
    recorded). A few queries for all the hours, newest first: after a backfill, a tick looks up
    hundreds of hours, which one query each made seconds of the daemon's time."""
    found: dict[str, str | None] = {}
    for i in range(0, len(keys), 100):
        wanted = set(keys[i : i + 100])
        records_filter = dg.AssetRecordsFilter(asset_key=LLM_REQUESTS, asset_partitions=sorted(wanted))
        cursor = None
        while wanted:
            page = instance.fetch_materializations(records_filter, limit=len(wanted) * 2, cursor=cursor)
            for record in page.records:
                if record.partition_key in wanted:
                    wanted.discard(record.partition_key)
                    value = record.asset_materialization.metadata.get(LOG_FINGERPRINT)  # type: ignore[union-attr]
                    found[record.partition_key] = str(value.value) if value is not None else None
            if not page.has_more:
                break
            cursor = page.cursor
    return found


@dg.sensor(
    job=hourly_monitoring,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-runs hourly_monitoring for an already materialized hour whose log files differ from what it read.",
)
def late_logs_sensor(context: dg.SensorEvaluationContext, logs: LogSource):
    """The cursor holds, per hour, the folder fingerprint last compared with a materialization.
    Only folders that changed since are looked up; an hour not yet materialized is left out of
    the cursor, so the tick after its first run compares what that run read with the folder (a
    file that landed while the run was reading it is then caught)."""
    if logs.is_remote:
        return dg.SkipReason(f"{logs.location} is an object store: use its event notifications instead.")
    current = hour_fingerprints(logs)
    if context.cursor is None:  # no runs for what changed before the sensor started; unmaterialized hours stay open
        materialized = context.instance.get_materialized_partitions(LLM_REQUESTS)
        context.update_cursor(json.dumps({key: digest for key, digest in current.items() if key in materialized}))
        return dg.SkipReason(f"Baseline: {len(current)} hour folders fingerprinted.")
    compared = json.loads(context.cursor)
    changed = sorted(key for key, digest in current.items() if compared.get(key) != digest)
    # Hours never materialized are the schedule's (or a backfill's) to run, not this sensor's.
    materialized = context.instance.get_materialized_partitions(LLM_REQUESTS) if changed else set()
    recorded = recorded_fingerprints(context.instance, [key for key in changed if key in materialized])
    requests = []
    for key in changed:
        if key not in materialized:
            compared.pop(key, None)
            continue
        compared[key] = current[key]
        if recorded.get(key) != current[key]:
            requests.append(
                dg.RunRequest(
                    partition_key=key,
                    run_key=f"late_logs:{key}:{current[key]}",
                    tags={"monitoring/trigger": "late_logs"},
                )
            )
    context.update_cursor(json.dumps({key: digest for key, digest in compared.items() if key in current}))
    if not requests:
        return dg.SkipReason(f"{len(changed)} hour folder(s) changed, none differs from what its last run read.")
    context.log.info(f"Late or changed logs in {', '.join(str(r.partition_key) for r in requests)}")
    return requests
