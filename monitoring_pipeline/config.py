"""The YAML configuration: thresholds, prices, budgets, alert channel, review sample rate.

Defaults live here, in the models, and nowhere else; `default_config.yaml` documents them (a test
holds it equal to them). A user's file (MONITORING_CONFIG) holds only the keys it changes: it is
merged over the defaults, then validated strictly, once: unknown keys, a bool or a string where a
number belongs, infinities and YAML aliases are refused with the key's path. Nothing here reads
the environment at import time.
"""

import os
import re
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any, Literal

import duckdb
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default_config.yaml")
MAX_CONFIG_BYTES = 1_000_000  # a configuration is a few KB; anything near this is not one


class ConfigError(ValueError):
    """The configuration file is not valid; the message names each bad key by its path."""


class _Strict(BaseModel):
    # strict: no bool or "5000" where a number belongs (an int is still a valid float);
    # allow_inf_nan: a threshold of .inf would never fire.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class Thresholds(_Strict):
    latency_p99_ms: float = Field(default=5000, gt=0)
    latency_avg_ms: float = Field(default=3000, gt=0)
    error_rate: float = Field(default=0.01, ge=0, le=1)
    feedback_avg_min: float = Field(default=3.0, ge=1, le=5)
    quarantine_rate: float = Field(default=0.01, ge=0, le=1)
    safety_violations: int = Field(default=0, ge=0)


class MinSample(_Strict):
    """Fewer requests than this in a scope and the check passes ("not enough data"), by check name.
    A new check gets its minimum with one line here (`<check name>: int = Field(default=1, ge=0)`)
    and one in default_config.yaml; a check without a line uses 1."""

    latency_p99: int = Field(default=20, ge=0)
    latency_avg: int = Field(default=1, ge=0)
    error_rate: int = Field(default=1, ge=0)
    feedback_score: int = Field(default=1, ge=0)
    token_budget: int = Field(default=1, ge=0)
    safety_violations: int = Field(default=1, ge=0)
    quarantine_rate: int = Field(default=1, ge=0)
    judge_bad_rate: int = Field(default=10, ge=0)
    refusal_rate: int = Field(default=20, ge=0)
    empty_response_rate: int = Field(default=20, ge=0)
    truncation_rate: int = Field(default=20, ge=0)
    invalid_json_rate: int = Field(default=20, ge=0)
    prompt_injection_rate: int = Field(default=20, ge=0)
    pii_leak: int = Field(default=1, ge=0)
    traffic_anomaly: int = Field(default=1, ge=0)
    error_rate_anomaly: int = Field(default=1, ge=0)
    latency_p99_anomaly: int = Field(default=20, ge=0)
    cost_anomaly: int = Field(default=1, ge=0)
    slo_availability_burn: int = Field(default=1, ge=0)
    slo_latency_burn: int = Field(default=1, ge=0)

    def get(self, check: str, default: int = 1) -> int:
        return getattr(self, check, default)


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
    sample_rate: float = Field(default=0.01, ge=0, le=1)
    output_dir: str = "data/review"
    strata: ReviewStrata = ReviewStrata()
    min_per_model: int = Field(default=5, ge=0)
    max_per_hour: int = Field(default=500, ge=0)
    preview_rows: int = Field(default=5, ge=0)
    inbox_dir: str = "data/review/inbox"
    user_id_salt: str = ""
    human_bad_rate: HumanBadRate = HumanBadRate()


class Rubric(_Strict):
    """One question the LLM judge answers about each sampled response."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    instruction: str = Field(min_length=1)


def _default_rubrics() -> list[Rubric]:
    return [Rubric(name="quality", instruction="Is the response correct, helpful and safe for the prompt?")]


class JudgeConfig(_Strict):
    """The LLM judge (off unless MONITORING_JUDGE_URL and MONITORING_JUDGE_MODEL are set)."""

    rubrics: list[Rubric] = Field(default_factory=_default_rubrics)
    max_calls_per_hour: int = Field(default=300, ge=0)
    concurrency: int = Field(default=4, ge=1, le=64)
    timeout_s: float = Field(default=60, gt=0)
    max_attempts: int = Field(default=4, ge=1)  # per call: 429 and 5xx are retried within the run
    backoff_s: float = Field(default=1.0, ge=0)  # first retry's wait, doubling each attempt
    retry_after_cap_s: float = Field(default=60, ge=0)
    bad_rate_threshold: float = Field(default=0.10, ge=0, le=1)
    min_kappa: float = Field(default=0.4, ge=-1, le=1)
    min_pairs: int = Field(default=30, ge=1)

    @field_validator("rubrics")
    @classmethod
    def _unique_names(cls, rubrics: list[Rubric]) -> list[Rubric]:
        names = [r.name for r in rubrics]
        if len(set(names)) != len(names):
            raise ValueError(f"rubric names must be unique, got {names}")
        return rubrics


class Silence(_Strict):
    """Mutes alerts for a check and/or a model (scope) until `until`. Muted alerts are still logged."""

    check: str | None = None
    model: str | None = None
    until: datetime = Field(strict=False)  # YAML gives a datetime, or a string when quoted
    reason: str = ""

    @field_validator("until", mode="before")
    @classmethod
    def _moment(cls, value: Any) -> Any:
        if isinstance(value, datetime):
            return value
        if isinstance(value, date):  # until: 2026-12-01
            return datetime.combine(value, time(), timezone.utc)
        if not isinstance(value, str):  # lax datetime would read a number as Unix seconds
            raise ValueError("expected an ISO 8601 time such as '2026-12-01T00:00:00Z'")
        return value

    def matches(self, check: str, scope: str, now: datetime) -> bool:
        """`now` is naive UTC, like every timestamp in the notification log."""
        return (
            (self.check is None or self.check == check)
            and (self.model is None or self.model == scope)
            and now < naive_utc(self.until)
        )


class AlertsConfig(_Strict):
    channel: str = "#llm-alerts"
    critical_channel: str = "#llm-alerts-critical"
    dry_run_file: str = "data/alerts/dry_run.jsonl"
    dagster_url: str = "http://127.0.0.1:3000"
    repeat_interval_hours: float = Field(default=4, gt=0)
    retry_after_cap_s: float = Field(default=300, gt=0)
    loud_after_failed_ticks: int = Field(default=3, ge=1)
    missing_logs_after_minutes: int = Field(default=30, ge=0)
    missing_logs_lookback_hours: int = Field(default=24, ge=1)
    page_max_age_hours: float = Field(default=6, gt=0)
    silences: list[Silence] = []


class RetentionConfig(_Strict):
    text_days: int = Field(default=30, ge=0)
    quarantine_days: int = Field(default=90, ge=0)
    compact: bool = True


def _default_prices() -> dict[str, Price]:
    return {
        "default": Price(input_per_mtok=1.00, output_per_mtok=4.00),
        "chat-large": Price(input_per_mtok=2.50, output_per_mtok=10.00),
        "code-small": Price(input_per_mtok=0.15, output_per_mtok=0.60),
    }


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


class AnomalyConfig(_Strict):
    """metric_anomalies: each hour against the same hour of the week over the previous weeks."""

    weeks: int = Field(default=4, ge=1)
    min_weeks: int = Field(default=2, ge=1)
    min_ratio: float = Field(default=2.0, ge=1)
    alpha: float = Field(default=0.0001, gt=0, lt=0.5)
    band_mads: float = Field(default=4.0, gt=0)
    min_band: float = Field(default=0.3, ge=0)
    min_rate: float = Field(default=0.001, ge=0, le=1)


class BurnWindow(_Strict):
    """A multi-window burn-rate rule: both windows (ending at the hour) burn at least `burn_rate`.
    A window of up to 60 minutes is the last minutes of the hour; a longer one, whole hours."""

    long_minutes: int = Field(gt=0)
    short_minutes: int = Field(gt=0)
    burn_rate: float = Field(gt=0)

    @field_validator("long_minutes", "short_minutes")
    @classmethod
    def _whole_hours_beyond_one(cls, minutes: int) -> int:
        if minutes > 60 and minutes % 60:
            raise ValueError("a window longer than 60 minutes must be whole hours (a multiple of 60)")
        return minutes


class SloTarget(_Strict):
    target: float = Field(default=0.99, gt=0, lt=1)


class LatencySlo(SloTarget):
    threshold_ms: float = Field(default=5000, gt=0)


class SlosConfig(_Strict):
    period_days: int = Field(default=30, ge=1)
    availability: SloTarget = SloTarget()
    latency: LatencySlo = LatencySlo()
    page: list[BurnWindow] = [
        BurnWindow(long_minutes=60, short_minutes=5, burn_rate=14.4),
        BurnWindow(long_minutes=360, short_minutes=30, burn_rate=6),
    ]
    ticket: list[BurnWindow] = [BurnWindow(long_minutes=4320, short_minutes=360, burn_rate=1)]


class MonitoringConfig(_Strict):
    thresholds: Thresholds = Thresholds()
    min_sample: MinSample = MinSample()
    hourly_token_budget: int = Field(default=5_000_000, gt=0)
    prices: dict[str, Price] = Field(default_factory=_default_prices)
    models: dict[str, ModelOverride] = {}
    review: ReviewConfig = ReviewConfig()
    alerts: AlertsConfig = AlertsConfig()
    retention: RetentionConfig = RetentionConfig()
    judge: JudgeConfig = JudgeConfig()
    anomaly: AnomalyConfig = AnomalyConfig()
    slos: SlosConfig = SlosConfig()

    @field_validator("prices")
    @classmethod
    def _has_default(cls, prices: dict[str, Price]) -> dict[str, Price]:
        if "default" not in prices:
            raise ValueError("a 'default' entry is required (the price of models not listed)")
        return prices

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


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader without anchors and aliases: nested aliases (a "billion laughs" file of 600 bytes)
    expand to billions of nodes, and the configuration is read on every sensor tick."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise ConfigError(
                f"line {event.start_mark.line + 1}: YAML anchors and aliases (&name, *name) are not "
                "supported in the configuration; write the values out"
            )
        return super().compose_node(parent, index)


def read_yaml(path: str | os.PathLike) -> dict:
    """The mapping in a configuration file, refusing what is not one (or is too big to be one)."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {len(data):,} bytes; a configuration file is at most {MAX_CONFIG_BYTES:,}")
    try:
        raw = yaml.load(data, Loader=_NoAliasLoader)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except (yaml.YAMLError, RecursionError) as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a YAML mapping at the top level")
    return raw


def _known_keys(loc: tuple) -> list[str]:
    """The keys the mapping at `loc` may hold, found by walking the models."""
    model: Any = MonitoringConfig
    parts = list(loc)
    while parts:
        field = model.model_fields.get(parts.pop(0))
        annotation = field.annotation if field else None
        if getattr(annotation, "__origin__", None) in (dict, list):  # prices.<model>, silences.<index>
            if not parts:
                return []
            parts.pop(0)
            annotation = annotation.__args__[-1]  # type: ignore[union-attr]
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)


def _describe(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for e in err.errors():
        loc = tuple(e["loc"])
        where = ".".join(str(p) for p in loc)
        if e["type"] == "extra_forbidden":
            known = _known_keys(loc[:-1])
            lines.append(f"  {where}: unknown key" + (f" (known: {', '.join(known)})" if known else ""))
        else:
            lines.append(f"  {where}: {e['msg']} (got {type(e['input']).__name__})")
    return "\n".join(lines)


def load_config(path: str | os.PathLike | None = None) -> MonitoringConfig:
    """The defaults with the user's file merged over them, validated. Raises ConfigError naming
    each bad key by its path."""
    if not path:
        return MonitoringConfig()
    raw = _merge(MonitoringConfig().model_dump(), read_yaml(path))
    try:
        return MonitoringConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_describe(err, str(path))) from None


def get_config(path: str | None = None) -> MonitoringConfig:
    """The configuration named by `path`, else MONITORING_CONFIG, else the defaults."""
    return load_config(path or os.environ.get("MONITORING_CONFIG") or None)
