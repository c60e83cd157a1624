"""review_inbox_sensor: a new or changed verdict file in the inbox -> load verdicts, recompute quality
and the judge's agreement with the reviewers."""

import hashlib
import json

import dagster as dg

from monitoring_pipeline.defs.jobs import review_verdicts_job
from monitoring_pipeline.defs.review.verdicts import inbox_files
from monitoring_pipeline.resources import MonitoringSettings


def fingerprints(inbox: str) -> dict[str, str]:
    """path -> sha256 of the content: a file copied in again unchanged is not news."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in inbox_files(inbox)}


@dg.sensor(
    name="review_inbox_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    target=review_verdicts_job,
    description="Loads reviewer verdict files dropped into review.inbox_dir and recomputes human_quality "
    "and judge_agreement.",
)
def review_inbox_sensor(context: dg.SensorEvaluationContext, settings: MonitoringSettings):
    inbox = settings.load().review.inbox_dir
    seen = json.loads(context.cursor) if context.cursor else {}
    current = fingerprints(inbox)
    news = sorted(path for path, digest in current.items() if seen.get(path) != digest)
    cursor = json.dumps(current, sort_keys=True)
    if not news:
        return dg.SensorResult(skip_reason=f"No new or changed verdict files in {inbox}", cursor=cursor)
    context.log.info(f"New or changed verdict files: {', '.join(news)}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(tags={"review/files": str(len(news))})],
        cursor=cursor,
    )
