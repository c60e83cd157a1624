"""The YAML configuration: defaults in one place, a user's file holds only what it changes, and
anything else is refused fast, naming the key."""

import re
import time
from datetime import datetime

import pytest

from monitoring_pipeline.config import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    MonitoringConfig,
    get_config,
    load_config,
    naive_utc,
    read_yaml,
)
from monitoring_pipeline.resources import MonitoringSettings


def write(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_config_default_yaml_documents_exactly_the_defaults():
    """default_config.yaml is the documentation of the defaults in config.py: every key, same value."""
    assert read_yaml(DEFAULT_CONFIG_PATH) == MonitoringConfig().model_dump()
    assert load_config(DEFAULT_CONFIG_PATH) == MonitoringConfig() == get_config()


def test_config_user_file_needs_only_the_keys_it_changes(tmp_path):
    path = write(
        tmp_path,
        "thresholds: {latency_p99_ms: 8000}\n"  # an int where a float belongs is fine
        "min_sample: {latency_p99: 50}\n"
        "prices: {gpt-x: {input_per_mtok: 3, output_per_mtok: 12.5}}\n",
    )
    config = MonitoringSettings(config_path=str(path)).load()
    assert config.thresholds.latency_p99_ms == 8000.0 and config.thresholds.error_rate == 0.01
    assert config.min_sample.get("latency_p99") == 50 and config.min_sample.get("error_rate") == 1
    assert config.min_sample.get("a_check_added_later") == 1
    assert set(config.prices) == {"default", "chat-large", "code-small", "gpt-x"}
    assert config.price("gpt-x").output_per_mtok == 12.5 and config.price("other").input_per_mtok == 1.0


@pytest.mark.parametrize(
    "text, says",
    [
        (
            "min_sample: {latency_p99s: 500}\n",
            "min_sample.latency_p99s: unknown key (known: cost_anomaly, error_rate, ",
        ),
        ("review: {sampel_rate: 0.1}\n", "review.sampel_rate: unknown key (known: "),
        ("models: {chat-large: {latency_p99: 1}}\n", "models.chat-large.latency_p99: unknown key (known: "),
        ("alerts: {silences: [{check: x, until: 2027-01-01, resaon: y}]}\n", "alerts.silences.0.resaon: unknown key"),
        ("thresholds: {error_rate: true}\n", "thresholds.error_rate: Input should be a valid number (got bool)"),
        (
            'thresholds: {latency_p99_ms: "5000"}\n',
            "thresholds.latency_p99_ms: Input should be a valid number (got str)",
        ),
        ("thresholds: {latency_p99_ms: .inf}\n", "thresholds.latency_p99_ms: Input should be a finite number"),
        ("hourly_token_budget: 5000000.0\n", "hourly_token_budget: Input should be a valid integer (got float)"),
        ("retention: {compact: 1}\n", "retention.compact: Input should be a valid boolean (got int)"),
        ("prices: null\n", "prices: Input should be a valid dictionary (got NoneType)"),
        ("prices: {chat-large: null}\n", "prices.chat-large: Input should be a valid dictionary"),
        ("alerts: {silences: [{until: 5000}]}\n", "alerts.silences.0.until: Value error, expected an ISO 8601"),
        ("review: null\n", "review: Input should be a valid dictionary"),
        ("- thresholds\n", "expected a YAML mapping at the top level"),
        ("thresholds: {error_rate: [\n", "not valid YAML"),
    ],
)
def test_config_refuses_bad_values_naming_the_key(tmp_path, text, says):
    with pytest.raises(ConfigError, match=re.escape(says)):
        load_config(write(tmp_path, text))


def test_config_silence_until_quoted_bare_or_a_date(tmp_path):
    path = write(
        tmp_path,
        "alerts:\n  silences:\n"
        '    - {check: a, until: "2026-12-01T00:00:00Z"}\n'
        "    - {check: b, until: 2026-12-01T01:00:00+01:00}\n"
        "    - {check: c, until: 2026-12-01}\n",
    )
    assert {naive_utc(s.until) for s in load_config(path).alerts.silences} == {datetime(2026, 12, 1)}


def test_config_billion_laughs_refused_in_milliseconds(tmp_path):
    """Nested aliases: a few hundred bytes that expand to 9**9 strings. It took over 30 s (then
    minutes) to refuse; the configuration is read on every sensor tick."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    path = write(tmp_path, "\n".join(lines) + "\n")
    assert path.stat().st_size < 600
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"line 1: YAML anchors and aliases \(&name, \*name\) are not supported"):
        MonitoringSettings(config_path=str(path)).load()
    assert time.monotonic() - started < 5  # ~1 ms in fact


def test_config_a_lone_alias_is_refused_too(tmp_path):
    path = write(tmp_path, "thresholds: &t {error_rate: 0.5}\n")
    with pytest.raises(ConfigError, match="anchors and aliases"):
        load_config(path)
