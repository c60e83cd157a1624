"""The YAML configuration: thresholds, prices, budgets, alert channel, review sample rate.

Loaded from MONITORING_CONFIG (or the shipped default_config.yaml), merged over the
defaults, and validated once. Nothing here reads the environment at import time.
"""

import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import duckdb
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default_config.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Thresholds(_Strict):
    latency_p99_ms: float = Field(gt=0)
    latency_avg_ms: float = Field(gt=0)
    error_rate: float = Field(ge=0, le=1)
    feedback_avg_min: float = Field(ge=1, le=5)
    quarantine_rate: float = Field(ge=0, le=1)
    safety_violations: int = Field(ge=0)


class ModelOverride(_Strict):
    latency_p99_ms: float | None = Field(default=None, gt=0)
    latency_avg_ms: float | None = Field(default=None, gt=0)
    error_rate: float | None = Field(default=None, ge=0, le=1)
    feedback_avg_min: float | None = Field(default=None, ge=1, le=5)
    safety_violations: int | None = Field(default=None, ge=0)
    hourly_token_budget: int | None = Field(default=None, gt=0)


class Price(_Strict):
    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


class ReviewStrata(_Strict):
    """Per-hour quotas of each stratum; 0 turns a stratum off."""

    safety_flag: int = Field(default=100, ge=0)
    error: int = Field(default=50, ge=0)
    low_feedback: int = Field(default=50, ge=0)
    slow: int = Field(default=20, ge=0)
    pii_leak: int = Field(default=100, ge=0)
    evaluator_flag: int = Field(default=50, ge=0)


class HumanBadRate(_Strict):
    threshold: float = Field(default=0.10, ge=0, le=1)
    window_hours: int = Field(default=24, gt=0)
    min_reviews: int = Field(default=30, ge=1)


class ReviewConfig(_Strict):
    sample_rate: float = Field(ge=0, le=1)
    output_dir: str
    strata: ReviewStrata = ReviewStrata()
    min_per_model: int = Field(default=5, ge=0)
    max_per_hour: int = Field(default=500, ge=0)
    preview_rows: int = Field(default=5, ge=0)
    inbox_dir: str = "data/review/inbox"
    user_id_salt: str = ""
    human_bad_rate: HumanBadRate = HumanBadRate()


class Silence(_Strict):
    """Mutes alerts for a check and/or a model (scope) until `until`. Muted alerts are still logged."""

    check: str | None = None
    model: str | None = None
    until: datetime
    reason: str = ""

    def matches(self, check: str, scope: str, now: datetime) -> bool:
        """`now` is naive UTC, like every timestamp in the notification log."""
        return (
            (self.check is None or self.check == check)
            and (self.model is None or self.model == scope)
            and now < naive_utc(self.until)
        )


class AlertsConfig(_Strict):
    channel: str
    critical_channel: str
    dry_run_file: str
    dagster_url: str
    repeat_interval_hours: float = Field(gt=0)
    retry_after_cap_s: float = Field(gt=0)
    loud_after_failed_ticks: int = Field(ge=1)
    missing_logs_after_minutes: int = Field(ge=0)
    missing_logs_lookback_hours: int = Field(ge=1)
    silences: list[Silence] = []


class RetentionConfig(_Strict):
    text_days: int = Field(default=30, ge=0)
    quarantine_days: int = Field(default=90, ge=0)
    compact: bool = True


BUILTIN_EVALUATORS = ("refusal", "empty_response", "truncated", "pii_leak", "prompt_injection", "invalid_json")
_CUSTOM_KEYS = {"name", "field", "regex", "contains_any", "max_chars", "min_chars", "threshold", "severity"}
_RULES = ("regex", "contains_any", "max_chars", "min_chars")


class EvaluatorThresholds(_Strict):
    """A check fails when its fail rate (flagged / judged) is above this; pii_leak: flagged calls > this."""

    refusal_rate: float = Field(default=0.05, ge=0, le=1)
    empty_response_rate: float = Field(default=0.01, ge=0, le=1)
    truncation_rate: float = Field(default=0.05, ge=0, le=1)
    invalid_json_rate: float = Field(default=0.02, ge=0, le=1)
    prompt_injection_rate: float = Field(default=0.01, ge=0, le=1)
    pii_leak: int = Field(default=0, ge=0)


class CustomEvaluator(_Strict):
    """A team's own evaluator: flags a prompt or response by a regex (RE2, DuckDB's engine), any of
    some phrases (case-insensitive), or its length; its check is `<name>_rate`."""

    name: str
    field: Literal["prompt", "response"]
    regex: str | None = None
    contains_any: list[str] | None = None
    max_chars: int | None = Field(default=None, ge=0)
    min_chars: int | None = Field(default=None, ge=1)
    threshold: float = Field(ge=0, le=1)
    severity: Literal["warn", "error"] = "warn"

    @model_validator(mode="before")
    @classmethod
    def _named_errors(cls, raw):
        """Errors name the evaluator, not its position in the list."""
        if not isinstance(raw, dict):
            raise ValueError(f"each custom evaluator is a mapping, got {raw!r}")
        name = raw.get("name")
        label = f"evaluator {name!r}" if name else "a custom evaluator without a name"
        unknown = sorted(set(raw) - _CUSTOM_KEYS)
        if unknown:
            raise ValueError(f"{label}: unknown key(s) {unknown}; allowed: {sorted(_CUSTOM_KEYS)}")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", name):
            raise ValueError(
                f"{label}: name must be lower-case letters, digits and _ (it becomes the check <name>_rate)"
            )
        if name in BUILTIN_EVALUATORS:
            raise ValueError(f"{label}: {name} is a built-in evaluator")
        rules = [k for k in _RULES if raw.get(k) is not None]
        if len(rules) != 1:
            raise ValueError(f"{label}: give exactly one of {list(_RULES)}, got {rules or 'none'}")
        if raw.get("regex") is not None:
            _check_regex(label, raw["regex"])
        if raw.get("contains_any") is not None and (
            not isinstance(raw["contains_any"], list)
            or not raw["contains_any"]
            or not all(isinstance(p, str) and p for p in raw["contains_any"])
        ):
            raise ValueError(f"{label}: contains_any must be a non-empty list of non-empty strings")
        return raw

    def pattern(self) -> str:
        """The RE2 pattern of a regex or contains_any evaluator."""
        if self.regex is not None:
            return self.regex
        return "(?i:" + "|".join(re.sub(r"([\\.^$|?*+()\[\]{}])", r"\\\1", p) for p in self.contains_any or []) + ")"


def _check_regex(label: str, regex) -> None:
    """Compiled by DuckDB's own engine (RE2), which is what runs it: Python's re accepts other syntax."""
    if not isinstance(regex, str) or not regex:
        raise ValueError(f"{label}: regex must be a non-empty string")
    try:
        with duckdb.connect() as conn:
            conn.execute("SELECT regexp_matches('', $p)", {"p": regex})
    except duckdb.Error as err:
        raise ValueError(f"{label}: invalid regex {regex!r}: {str(err).splitlines()[0]}") from None


class EvaluatorsConfig(_Strict):
    thresholds: EvaluatorThresholds = EvaluatorThresholds()
    custom: list[CustomEvaluator] = []

    @model_validator(mode="after")
    def _unique_names(self):
        names = [c.name for c in self.custom]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"custom evaluators named more than once: {twice}")
        return self


class MonitoringConfig(_Strict):
    thresholds: Thresholds
    min_sample: dict[str, int]
    hourly_token_budget: int = Field(gt=0)
    prices: dict[str, Price]
    models: dict[str, ModelOverride] = {}
    review: ReviewConfig
    alerts: AlertsConfig
    retention: RetentionConfig = RetentionConfig()
    evaluators: EvaluatorsConfig = EvaluatorsConfig()

    def price(self, model: str) -> Price:
        return self.prices.get(model, self.prices["default"])

    def threshold(self, key: str, model: str | None = None) -> float:
        """The threshold for `key` (a Thresholds field or hourly_token_budget), per model if overridden."""
        override = self.models.get(model) if model else None
        if override is not None and getattr(override, key, None) is not None:
            return getattr(override, key)
        if key == "hourly_token_budget":
            return self.hourly_token_budget
        return getattr(self.thresholds, key)


def naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


def _merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(path: str | os.PathLike | None = None) -> MonitoringConfig:
    """Read the defaults, merge the user's file over them, validate. Raises with the bad key on error."""
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    if path:
        user = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(user, dict):
            raise ValueError(f"{path}: expected a YAML mapping at the top level")
        raw = _merge(raw, user)
    if "default" not in raw.get("prices", {}):
        raise ValueError("prices: a 'default' entry is required")
    return MonitoringConfig.model_validate(raw)


def get_config(path: str | None = None) -> MonitoringConfig:
    """The configuration named by `path`, else MONITORING_CONFIG, else the shipped default."""
    return load_config(path or os.environ.get("MONITORING_CONFIG") or None)
