"""human_quality per hour (bad rate with a Wilson interval, by model and category) and the
human_bad_rate check: failing, passing, its window, and the Slack alert it raises."""

import json
import math
from datetime import timedelta

import dagster as dg
import pytest

from monitoring_pipeline.defs.alerts.sensors import slack_alert_sensor
from monitoring_pipeline.defs.ingest.assets import llm_requests
from monitoring_pipeline.defs.review.human_quality import human_quality
from monitoring_pipeline.defs.review.sample import review_sample
from monitoring_pipeline.defs.review.verdicts_asset import review_verdicts
from monitoring_pipeline_tests.conftest import HOUR, LogWriter, config_writer, folder_resources, record

HEADER = "request_id,verdict,category,notes,reviewer\n"
LATER = HOUR + timedelta(hours=2)


def wilson(bad: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    p = bad / n
    center, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (center - half) / (1 + z * z / n), (center + half) / (1 + z * z / n)


def two_sampled_hours(root) -> None:
    """10:00 and 12:00, 10 requests each (6 chat-large, 4 code-small), all in review_sample."""
    config_writer(root)({"review": {"sample_rate": 1.0}})
    logs = LogWriter(root / "logs")
    with dg.DagsterInstance.ephemeral() as instance:
        for hour, partition in ((HOUR, "2026-03-01-10:00"), (LATER, "2026-03-01-12:00")):
            logs.records(
                [record(i, hour=hour, model="chat-large" if i < 6 else "code-small") for i in range(10)], hour=hour
            )
            dg.materialize(
                [llm_requests, review_sample],
                partition_key=partition,
                resources=folder_resources(root),
                instance=instance,
            )


@pytest.fixture
def reviewed(tmp_path, config_file, start_from, resources, instance):
    """Two sampled hours (10:00 and 12:00, 10 requests each; materialized once per session, the
    same for every test) and a function that writes verdicts and materializes review_verdicts +
    human_quality, returning the check evaluation."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    start_from("two sampled hours", two_sampled_hours)

    def setup(bad_rate_rule: dict, lines: list[str]):
        config_file({"review": {"sample_rate": 1.0, "inbox_dir": str(inbox), "human_bad_rate": bad_rate_rule}})
        (inbox / "verdicts.csv").write_text(HEADER + "".join(line + "\n" for line in lines))
        result = dg.materialize([review_verdicts, human_quality], resources=resources, instance=instance)
        (evaluation,) = result.get_asset_check_evaluations()
        return evaluation

    return setup


def hour10(bad: int, good: int) -> list[str]:
    """`bad` bad verdicts (two tone, the rest hallucination) then `good` good ones, at 10:00."""
    lines = [f"req-10-{i:05d},bad,{'tone' if i < 2 else 'hallucination'},,ann" for i in range(bad)]
    return lines + [f"req-10-{i:05d},good,,,ann" for i in range(bad, bad + good)]


def test_human_quality_rates_and_interval(reviewed, query):
    reviewed({"threshold": 0.5, "window_hours": 24, "min_reviews": 1}, hour10(bad=3, good=7))
    rows = {
        (d, v): (n, b, r, lo, hi)
        for d, v, n, b, r, lo, hi in query(
            "SELECT dimension, value, reviewed, bad, bad_rate, ci_low, ci_high FROM human_quality"
        )
    }
    lo, hi = wilson(3, 10)
    assert rows[("all", "all")] == pytest.approx((10, 3, 0.3, lo, hi))
    assert rows[("model", "chat-large")][:3] == (6, 3, 0.5) and rows[("model", "code-small")][:3] == (4, 0, 0.0)
    assert rows[("category", "tone")][:3] == (10, 2, 0.2)
    assert rows[("category", "hallucination")][:3] == (10, 1, 0.1)
    assert query("SELECT DISTINCT hour FROM human_quality") == [(HOUR.replace(tzinfo=None),)]


def test_human_bad_rate_fails_above_threshold_with_enough_reviews(reviewed):
    evaluation = reviewed({"threshold": 0.1, "window_hours": 24, "min_reviews": 5}, hour10(bad=3, good=7))
    md = {k: v.value for k, v in evaluation.metadata.items()}
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert (md["value"], md["threshold"], md["sample_size"], md["min_sample"]) == (0.3, 0.1, 10, "5")
    assert (md["ci_low"], md["ci_high"]) == pytest.approx(wilson(3, 10))
    # all reviews, then per model with enough reviews of its own: chat-large 3/6 bad; code-small has only 4
    assert md["breaches"] == [
        {"scope": "all", "value": 0.3, "threshold": 0.1, "sample_size": 10},
        {"scope": "chat-large", "value": 0.5, "threshold": 0.1, "sample_size": 6},
    ]


@pytest.mark.parametrize(
    "rule, lines",
    [
        ({"threshold": 0.1, "window_hours": 24, "min_reviews": 11}, hour10(bad=3, good=7)),  # too few reviews
        ({"threshold": 0.3, "window_hours": 24, "min_reviews": 10}, hour10(bad=3, good=7)),  # at, not above
        ({"threshold": 0.1, "window_hours": 24, "min_reviews": 1}, []),  # no verdicts at all
    ],
)
@pytest.mark.slow
def test_human_bad_rate_passes(reviewed, rule, lines):
    assert reviewed(rule, lines).passed


@pytest.mark.slow
def test_human_bad_rate_window_trails_the_newest_reviewed_hour(reviewed):
    lines = hour10(bad=5, good=0) + [f"req-12-{i:05d},good,,,bob" for i in range(5)]
    recent = reviewed({"threshold": 0.2, "window_hours": 2, "min_reviews": 1}, lines)  # 11:00-12:00 only
    assert recent.passed and recent.metadata["value"].value == 0.0
    assert recent.metadata["window"].value == "2026-03-01 11:00 .. 2026-03-01 12:00 UTC"


@pytest.mark.slow
def test_human_bad_rate_window_includes_older_hours(reviewed):
    lines = hour10(bad=5, good=0) + [f"req-12-{i:05d},good,,,bob" for i in range(5)]
    wide = reviewed({"threshold": 0.2, "window_hours": 3, "min_reviews": 1}, lines)
    assert not wide.passed and wide.metadata["value"].value == 0.5 and wide.metadata["sample_size"].value == 10


@pytest.mark.slow
def test_human_bad_rate_failure_alerts_through_the_slack_sensor(reviewed, instance, resources, tmp_path):
    reviewed({"threshold": 0.1, "window_hours": 24, "min_reviews": 5}, hour10(bad=4, good=6))
    tick = slack_alert_sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources=resources))
    assert "1 new message(s)" in tick.skip_message
    (message,) = [json.loads(line) for line in (tmp_path / "alerts" / "dry_run.jsonl").read_text().splitlines()]
    assert message["text"].startswith("Monitoring: 1 firing") and "Checks: human_bad_rate" in message["text"]
    section = message["blocks"][1]["text"]["text"]
    assert "`human_bad_rate` on `human_quality`" in section
    assert "for *2026-02-28 11:00 .. 2026-03-01 10:00 UTC*" in section and "all hours" not in section  # its window
    assert "all traffic: *40.00%* vs threshold 10.00% (sample 10)" in section
    assert "model `chat-large`: *66.67%* vs threshold 10.00% (sample 6)" in section
