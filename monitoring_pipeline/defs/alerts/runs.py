"""Read finished runs from the Dagster instance: their check evaluations (passed and failed) and,
for failed runs, what failed.

Sensors keyed on assets never see check results, and a failed WARN check leaves its run
successful, so this walks finished runs (success and failure) by storage id.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import dagster as dg

FINISHED = (dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE)
INGEST_ASSET = "llm_requests"


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
    evaluations: tuple[Evaluation, ...] = field(default=())

    @property
    def ingest_failed(self) -> bool:
        """The hour's logs did not load: its metric checks judge missing data, so they stay quiet."""
        return any(step == INGEST_ASSET or step.endswith(f".{INGEST_ASSET}") for step in self.failed_steps)


def _plain(metadata: Mapping) -> dict:
    return {key: getattr(value, "value", value) for key, value in metadata.items()}


def finished_runs(instance: dg.DagsterInstance, cursor: str | None, limit: int = 100) -> tuple[list[FinishedRun], str]:
    """Runs that finished after `cursor`, oldest first; returns them and the next cursor."""
    positions = json.loads(cursor) if cursor else {}
    found: list[tuple[int, FinishedRun]] = []
    for event_type in FINISHED:
        result = instance.fetch_run_status_changes(
            event_type, limit=limit, cursor=positions.get(event_type.value), ascending=True
        )
        for record in result.records:
            found.append((record.storage_id, read_run(instance, record.run_id)))
        positions[event_type.value] = result.cursor
    return [run for _, run in sorted(found, key=lambda pair: pair[0])], json.dumps(positions, sort_keys=True)


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
        evaluations=tuple(evaluations),
    )
