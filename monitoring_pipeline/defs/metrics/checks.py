"""The threshold checks on hourly metrics: one per threshold, judged for the hour and per model."""

from dataclasses import dataclass

import dagster as dg

from monitoring_pipeline.config import MonitoringConfig
from monitoring_pipeline.lib.checks import check_result, judge

LATENCY_P99 = "latency_p99"
LATENCY_AVG = "latency_avg"
ERROR_RATE = "error_rate"
TOKEN_BUDGET = "token_budget"
FEEDBACK_SCORE = "feedback_score"
SAFETY_VIOLATIONS = "safety_violations"


@dataclass(frozen=True)
class ThresholdCheck:
    name: str
    metric: str  # column of hourly_metrics / hourly_model_metrics
    threshold_key: str  # key in config.thresholds (or hourly_token_budget)
    fails_below: bool  # True: fails when value < threshold; False: when value > threshold
    sample: str  # the column that counts the evidence
    severity: dg.AssetCheckSeverity
    description: str
    what: str  # the figure, as a description names it
    unit: str  # ms | % | tokens | stars | requests


THRESHOLD_CHECKS = (
    ThresholdCheck(
        LATENCY_P99,
        "latency_p99_ms",
        "latency_p99_ms",
        False,
        "requests",
        dg.AssetCheckSeverity.WARN,
        "p99 latency above the threshold (default 5 s).",
        "p99 latency",
        "ms",
    ),
    ThresholdCheck(
        LATENCY_AVG,
        "latency_avg_ms",
        "latency_avg_ms",
        False,
        "requests",
        dg.AssetCheckSeverity.WARN,
        "Mean latency above the threshold (default 3 s).",
        "mean latency",
        "ms",
    ),
    ThresholdCheck(
        ERROR_RATE,
        "error_rate",
        "error_rate",
        False,
        "requests",
        dg.AssetCheckSeverity.WARN,
        "Share of calls with status error above the threshold (default 1 %).",
        "error rate",
        "%",
    ),
    ThresholdCheck(
        TOKEN_BUDGET,
        "total_tokens",
        "hourly_token_budget",
        False,
        "requests",
        dg.AssetCheckSeverity.WARN,
        "The hour's input + output tokens over the hourly budget.",
        "tokens",
        "tokens",
    ),
    ThresholdCheck(
        FEEDBACK_SCORE,
        "feedback_avg",
        "feedback_avg_min",
        True,
        "feedback_count",
        dg.AssetCheckSeverity.WARN,
        "Mean user rating below the threshold (default 3 stars).",
        "mean rating",
        "stars",
    ),
    ThresholdCheck(
        SAFETY_VIOLATIONS,
        "safety_violations",
        "safety_violations",
        False,
        "requests",
        dg.AssetCheckSeverity.ERROR,
        "Any request with a safety flag (critical).",
        "flagged requests",
        "requests",
    ),
)


def evaluate(
    check: ThresholdCheck, overall: dict, per_model: list[dict], config: MonitoringConfig
) -> dg.AssetCheckResult:
    """Judge the hour against the global threshold and each model against its own (override or
    global). Scopes with less evidence than min_sample pass: too little data to call."""
    min_sample = config.min_sample.get(check.name, 1)
    rows = [(None, overall)] + [(row["model"], row) for row in per_model]
    scopes = [
        judge(
            model or "all",
            row[check.metric],
            config.threshold(check.threshold_key, model),
            row[check.sample],
            min_sample=min_sample,
            fails_below=check.fails_below,
            judged=model is not None or not _overridden(config, check),
        )
        for model, row in rows
        # a model is judged on tokens only when it has a budget of its own
        if not (check.name == TOKEN_BUDGET and model is not None and not _own_budget(config, model))
    ]
    return check_result(
        check.name,
        "hourly_metrics",
        scopes,
        severity=check.severity,
        what=check.what,
        unit=check.unit,
        fails_below=check.fails_below,
        min_sample=min_sample,
    )


def _overridden(config: MonitoringConfig, check: ThresholdCheck) -> bool:
    """A model with its own threshold makes the mixed-traffic figure meaningless for this check
    (a 30 s reasoning model would always push the hour's p99 over 5 s), so the hour is then judged
    per model only. Budgets add up, so the hour's token budget always applies."""
    if check.name == TOKEN_BUDGET:
        return False
    return any(getattr(o, check.threshold_key, None) is not None for o in config.models.values())


def _own_budget(config: MonitoringConfig, model: str) -> bool:
    override = config.models.get(model)
    return override is not None and override.hourly_token_budget is not None


def check_specs(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(c.name, asset="hourly_metrics", description=c.description, partitions_def=partitions_def)
        for c in THRESHOLD_CHECKS
    ]
