"""Read finished runs from the Dagster instance: their check evaluations (passed and failed) and,
for failed runs, what failed.

Sensors keyed on assets never see check results, and a failed WARN check leaves its run
successful, so this walks finished runs (success and failure) by storage id.

The cursor is kept in the notification log, not in the instance, so it carries the id of the
instance it was read from: pointed at a new instance (a reset DAGSTER_HOME, a move to Postgres),
a cursor from the old one would skip every new run until the new storage ids caught up.
"""

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import dagster as dg

FINISHED = (dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE)
INGEST_ASSET = "llm_requests"
HOUR_KEY = "%Y-%m-%d-%H:%M"  # an hourly partition key
INSTANCE_ID_KEY = "monitoring_pipeline/alerts_instance_id"


@dataclass(frozen=True)
class Evaluation:
    asset: str
    check: str
    partition: str | None
    passed: bool
    severity: str  # WARN | ERROR
    metadata: dict


@dataclass(frozen=True)
class FinishedRun:
    run_id: str
    job_name: str
    partition: str | None
    failed: bool
    failure: str | None  # the run's failure message, when it failed
    failed_steps: tuple[str, ...] = ()
    backfill: str | None = None  # the backfill the run belongs to (run tag dagster/backfill)
    evaluations: tuple[Evaluation, ...] = field(default=())
    # a backfill's ranged run (lib/hourly.py): its first and last hour; a single-hour run has `partition`
    partition_range: tuple[str, str] | None = None

    @property
    def hours(self) -> tuple[str | None, str | None, int]:
        """(first hour, last hour, how many hours) the run covered."""
        if self.partition_range:
            first, last = self.partition_range
            span = datetime.strptime(last, HOUR_KEY) - datetime.strptime(first, HOUR_KEY)
            return first, last, int(span / timedelta(hours=1)) + 1
        return self.partition, self.partition, 1

    @property
    def ingest_failed(self) -> bool:
        """The hour's logs did not load: its metric checks judge missing data, so they stay quiet."""
        return any(step == INGEST_ASSET or step.endswith(f".{INGEST_ASSET}") for step in self.failed_steps)


def _plain(metadata: Mapping) -> dict:
    return {key: getattr(value, "value", value) for key, value in metadata.items()}


def instance_id(instance: dg.DagsterInstance) -> str:
    """An id kept in the instance's own storage (its key-value table): a new instance gets a new one."""
    found = instance.run_storage.get_cursor_values({INSTANCE_ID_KEY}).get(INSTANCE_ID_KEY)
    if found:
        return found
    new = uuid.uuid4().hex
    instance.run_storage.set_cursor_values({INSTANCE_ID_KEY: new})
    return new


def _newest_storage_id(instance: dg.DagsterInstance) -> int:
    newest = [
        record.storage_id
        for event_type in FINISHED
        for record in instance.fetch_run_status_changes(event_type, limit=1, ascending=False).records
    ]
    return max(newest, default=0)


def _foreign(instance: dg.DagsterInstance, state: dict, me: str) -> str | None:
    """Why a stored cursor cannot be used on this instance, or None."""
    if not state:
        return None
    if state.get("instance") != me:
        return f"the stored run cursor was read from another Dagster instance ({state.get('instance') or 'unknown'}, now {me})"
    newest = _newest_storage_id(instance)
    if state.get("last", 0) > newest:
        return (
            f"the stored run cursor (storage id {state['last']}) is past this instance's newest finished run ({newest})"
        )
    return None


def finished_runs(
    instance: dg.DagsterInstance, cursor: str | None, limit: int = 100
) -> tuple[list[FinishedRun], str, str | None]:
    """Runs that finished after `cursor`, oldest first; returns them, the next cursor, and why the
    stored cursor was dropped (it belongs to another instance: read from the start) or None."""
    me = instance_id(instance)
    state = json.loads(cursor) if cursor else {}
    reset = _foreign(instance, state, me)
    if reset:
        state = {}
    positions: dict = state.get("positions", {})
    last: int = state.get("last", 0)
    found: list[tuple[int, FinishedRun]] = []
    for event_type in FINISHED:
        result = instance.fetch_run_status_changes(
            event_type, limit=limit, cursor=positions.get(event_type.value), ascending=True
        )
        for record in result.records:
            found.append((record.storage_id, read_run(instance, record.run_id)))
            last = max(last, record.storage_id)
        positions[event_type.value] = result.cursor
    next_cursor = json.dumps({"instance": me, "positions": positions, "last": last}, sort_keys=True)
    return [run for _, run in sorted(found, key=lambda pair: pair[0])], next_cursor, reset


def read_run(instance: dg.DagsterInstance, run_id: str) -> FinishedRun:
    run = instance.get_run_by_id(run_id)
    records = instance.get_records_for_run(
        run_id,
        of_type={
            dg.DagsterEventType.ASSET_CHECK_EVALUATION,
            dg.DagsterEventType.STEP_FAILURE,
            dg.DagsterEventType.RUN_FAILURE,
        },
    ).records
    evaluations: list[Evaluation] = []
    failed_steps: list[str] = []
    failure = None
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            failed_steps.append(event.step_key or "?")
        elif event.event_type == dg.DagsterEventType.RUN_FAILURE:
            failure = event.message or record.event_log_entry.user_message
        elif isinstance(data := event.event_specific_data, dg.AssetCheckEvaluation):
            evaluations.append(
                Evaluation(
                    asset=data.asset_key.to_user_string(),
                    check=data.check_name,
                    partition=data.partition,
                    passed=data.passed,
                    severity=data.severity.value,
                    metadata=_plain(data.metadata),
                )
            )
    return FinishedRun(
        run_id=run_id,
        job_name=run.job_name if run else "?",
        partition=run.tags.get("dagster/partition") if run else None,
        failed=run is not None and run.status == dg.DagsterRunStatus.FAILURE,
        failure=failure,
        failed_steps=tuple(failed_steps),
        backfill=run.tags.get("dagster/backfill") if run else None,
        evaluations=tuple(evaluations),
        partition_range=_range(run.tags) if run else None,
    )


def _range(tags: Mapping[str, str]) -> tuple[str, str] | None:
    first, last = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
    return (first, last) if first and last else None
