"""The YAML configuration: thresholds, prices, budgets, alert channel, review sample rate.

Loaded from MONITORING_CONFIG (or the shipped default_config.yaml), merged over the
defaults, and validated once. Nothing here reads the environment at import time.
"""

import os
from datetime import datetime, timezone
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

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


class MonitoringConfig(_Strict):
    thresholds: Thresholds
    min_sample: dict[str, int]
    hourly_token_budget: int = Field(gt=0)
    prices: dict[str, Price]
    models: dict[str, ModelOverride] = {}
    review: ReviewConfig
    alerts: AlertsConfig
    retention: RetentionConfig = RetentionConfig()

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
