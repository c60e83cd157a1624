"""Read failed asset-check evaluations from the Dagster instance, run by run.

Sensors keyed on assets never see check results, and a failed WARN check leaves its run
successful, so this walks finished runs (success and failure) by storage id and reads each
run's ASSET_CHECK_EVALUATION events.
"""

import json
from dataclasses import dataclass

import dagster as dg

FINISHED = (dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE)


@dataclass(frozen=True)
class FailedCheck:
    run_id: str
    asset: str
    check: str
    partition: str | None
    severity: str  # WARN | ERROR
    metadata: dict

    @property
    def alert_id(self) -> str:
        return f"{self.run_id}:{self.asset}:{self.check}:{self.partition or '-'}"


def _plain(metadata: dict) -> dict:
    return {key: getattr(value, "value", value) for key, value in metadata.items()}


def new_failed_checks(instance: dg.DagsterInstance, cursor: str | None, limit: int = 100) -> tuple[list[FailedCheck], str]:
    """Failed evaluations in runs that finished after `cursor`; returns them and the next cursor."""
    positions = json.loads(cursor) if cursor else {}
    found: list[FailedCheck] = []
    for event_type in FINISHED:
        result = instance.fetch_run_status_changes(
            event_type, limit=limit, cursor=positions.get(event_type.value), ascending=True
        )
        for record in result.records:
            found.extend(failed_checks_in_run(instance, record.run_id))
        positions[event_type.value] = result.cursor
    return found, json.dumps(positions, sort_keys=True)


def failed_checks_in_run(instance: dg.DagsterInstance, run_id: str) -> list[FailedCheck]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    failed = []
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if evaluation.passed:
            continue
        failed.append(
            FailedCheck(
                run_id=run_id,
                asset=evaluation.asset_key.to_user_string(),
                check=evaluation.check_name,
                partition=evaluation.partition,
                severity=evaluation.severity.value,
                metadata=_plain(evaluation.metadata),
            )
        )
    return failed
