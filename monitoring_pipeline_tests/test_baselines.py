"""metric_anomalies and its checks: weeks of history seeded straight into hourly_metrics /
hourly_model_metrics, the judged hour materialized from real log files."""

import random
from datetime import datetime, timedelta, timezone

import dagster as dg
import duckdb
import pytest

from monitoring_pipeline.config import load_config
from monitoring_pipeline.defs.baselines.assets import metric_anomalies
from monitoring_pipeline.defs.baselines.stats import binomial_sf
from monitoring_pipeline.defs.ingest.assets import llm_requests
from monitoring_pipeline.defs.metrics.assets import hourly_metrics
from monitoring_pipeline.lib.partitions import partition_key
from monitoring_pipeline.tools.baselines_figures import Incident, Seeder, false_alarms
from monitoring_pipeline_tests.conftest import record

ASSETS = [llm_requests, hourly_metrics, metric_anomalies]
WED_15 = datetime(2026, 3, 4, 15, tzinfo=timezone.utc)  # a Wednesday, at the weekday peak
ANOMALY_CHECKS = ["traffic_anomaly", "error_rate_anomaly", "latency_p99_anomaly", "cost_anomaly"]


def seed(tmp_path, hour: datetime = WED_15, weeks: int = 4, incidents: tuple = ()) -> None:
    """Healthy history (quiet nights and weekends) for the `weeks` weeks before `hour`."""
    end = hour.replace(tzinfo=None)
    with duckdb.connect(str(tmp_path / "monitoring.duckdb")) as conn:
        Seeder(random.Random(7)).seed(conn, end - timedelta(weeks=weeks), end, list(incidents))


def write_hour(
    logs,
    hour: datetime = WED_15,
    chat: int = 700,
    code: int = 300,
    errors: dict | None = None,
    latency_scale: float = 1.0,
    output_tokens: int = 50,
    errors_before_minute: int = 60,
    slow_chat: bool = False,
) -> None:
    """An hour shaped like the seeded history (chat-large p99 ~3 s, code-small ~1.2 s, 0.2 %
    errors), spread evenly over the hour; `errors` = {model: count} of errors, spread evenly
    over the minutes before `errors_before_minute`."""
    errors = {"chat-large": 1, "code-small": 1} if errors is None else errors
    recs = []
    for model, n, base, step in (("chat-large", chat, 500.0, 25.0), ("code-small", code, 200.0, 10.0)):
        errs = errors.get(model, 0)
        for j in range(n):
            i = len(recs)
            offset = timedelta(seconds=j * 3600 / n)
            early = offset < timedelta(minutes=errors_before_minute)
            slots = int(n * errors_before_minute / 60)
            is_error = early and errs and j % max(1, slots // errs) == 0 and j // max(1, slots // errs) < errs
            latency = (base + (j % 100) * step) * latency_scale
            if slow_chat and model == "chat-large":
                latency = 6000.0
            recs.append(
                record(
                    i,
                    hour=hour,
                    model=model,
                    timestamp=(hour + offset).isoformat(),
                    latency_ms=latency,
                    output_tokens=output_tokens,
                    status="error" if is_error else "ok",
                )
            )
    logs.records(recs, hour=hour)


@pytest.fixture
def judge_hour(run_hour):
    def run(hour: datetime = WED_15):
        result = run_hour(partition=partition_key(hour), assets=ASSETS)
        return {
            e.check_name: e
            for e in result.get_asset_check_evaluations()
            if e.asset_key.to_user_string() == "metric_anomalies"
        }

    return run


def failed(evaluations: dict) -> list[str]:
    return sorted(name for name, e in evaluations.items() if not e.passed)


@pytest.mark.slow
def test_metric_anomalies_healthy_peak_hour_raises_nothing(tmp_path, logs, judge_hour, query):
    seed(tmp_path)
    write_hour(logs)
    evaluations = judge_hour()
    assert failed(evaluations) == []
    rows = query(
        "SELECT scope, metric, history, anomalous FROM metric_anomalies WHERE hour = ? ORDER BY ALL",
        [WED_15.replace(tzinfo=None)],
    )
    assert {(r[0], r[1]) for r in rows} == {
        (s, m)
        for s in ("all", "chat-large", "code-small")
        for m in ("requests", "error_rate", "latency_p99_ms", "cost_usd")
    }
    assert all(r[2] == 4 and r[3] is False for r in rows)


@pytest.mark.parametrize(
    ("hour", "chat", "code"),
    [
        (datetime(2026, 3, 4, 3, tzinfo=timezone.utc), 70, 30),  # a weekday night: a tenth of the peak
        (datetime(2026, 3, 7, 14, tzinfo=timezone.utc), 280, 120),  # Saturday afternoon: 40 %
    ],
)
@pytest.mark.slow
def test_metric_anomalies_quiet_hours_are_normal_for_their_time(tmp_path, logs, judge_hour, hour, chat, code):
    seed(tmp_path, hour=hour)
    write_hour(logs, hour=hour, chat=chat, code=code, errors={"chat-large": 1})
    assert failed(judge_hour(hour)) == []


def test_metric_anomalies_false_alarms_over_a_seeded_month_at_most_one_a_week():
    result = false_alarms(load_config(), weeks=4, seed=11)
    assert result["hours"] == 4 * 168
    assert result["per_week"] <= 1, result


def test_error_rate_anomaly_raises_only_its_check_with_the_expected_wording(tmp_path, logs, judge_hour):
    seed(tmp_path)
    write_hour(logs, errors={"chat-large": 14, "code-small": 6})  # 2 % vs 0.2 %
    evaluations = judge_hour()
    assert failed(evaluations) == ["error_rate_anomaly"]
    e = evaluations["error_rate_anomaly"]
    assert e.severity == dg.AssetCheckSeverity.WARN
    assert e.description.startswith("all traffic: error rate 2.00% vs 0.")
    assert "expected for Wednesday 15:00 (4 weeks)" in e.description
    assert {b["scope"] for b in e.metadata["breaches"].value} == {"all", "chat-large", "code-small"}
    assert "code-small" in e.metadata["scopes"].value  # the per-model breakdown


@pytest.mark.slow
def test_error_rate_anomaly_names_the_one_model_that_failed(tmp_path, logs, judge_hour):
    seed(tmp_path)
    write_hour(logs, errors={"code-small": 6})  # 2 % of code-small; 0.6 % overall is within noise
    e = judge_hour()["error_rate_anomaly"]
    assert not e.passed
    assert [b["scope"] for b in e.metadata["breaches"].value] == ["code-small"]
    assert e.description.startswith("model code-small: error rate 2.00% vs")


def test_error_rate_anomaly_few_errors_at_night_is_not_an_incident():
    # 2 errors in 40 requests (5 %) against a 0.2 % baseline: likely enough by chance (p ~ 0.003)
    assert binomial_sf(2, 40, 0.002) > load_config().anomaly.alpha


@pytest.mark.slow
def test_latency_p99_anomaly_raises_only_its_check(tmp_path, logs, judge_hour):
    seed(tmp_path)
    write_hour(logs, latency_scale=1.6)  # p99 ~4.7 s vs ~2.9 s, still under the 5 s SLO threshold
    evaluations = judge_hour()
    assert failed(evaluations) == ["latency_p99_anomaly"]


@pytest.mark.slow
def test_cost_anomaly_raises_only_its_check(tmp_path, logs, judge_hour):
    seed(tmp_path)
    write_hour(logs, output_tokens=150)  # same traffic, answers three times as long
    evaluations = judge_hour()
    assert failed(evaluations) == ["cost_anomaly"]
    assert "USD vs" in evaluations["cost_anomaly"].description


@pytest.mark.slow
def test_traffic_anomaly_a_drop_fails_as_a_flood_does(tmp_path, logs, judge_hour):
    seed(tmp_path)
    write_hour(logs, chat=210, code=90, errors={})  # 30 % of the usual peak
    evaluations = judge_hour()
    assert failed(evaluations) == ["traffic_anomaly"]
    assert ", below " in evaluations["traffic_anomaly"].description


@pytest.mark.slow
def test_traffic_anomaly_flood(tmp_path, logs, judge_hour):
    seed(tmp_path)
    write_hour(logs, chat=2100, code=900, errors={"chat-large": 3, "code-small": 3})
    evaluations = judge_hour()
    assert "traffic_anomaly" in failed(evaluations)
    assert ", above " in evaluations["traffic_anomaly"].description


@pytest.mark.slow
def test_metric_anomalies_too_little_history_passes(tmp_path, logs, judge_hour, query):
    seed(tmp_path, weeks=1)
    write_hour(logs, errors={"chat-large": 14, "code-small": 6}, output_tokens=150)
    evaluations = judge_hour()
    assert all(evaluations[c].passed for c in ANOMALY_CHECKS)
    assert "not enough history for Wednesday 15:00 (1 of 2 weeks needed)" in evaluations["cost_anomaly"].description
    assert query("SELECT DISTINCT history, anomalous FROM metric_anomalies") == [(1, False)]


@pytest.mark.slow
def test_metric_anomalies_last_weeks_incident_does_not_widen_the_band(tmp_path, logs, judge_hour):
    last_week = WED_15.replace(tzinfo=None) - timedelta(weeks=1)
    seed(tmp_path, incidents=(Incident(last_week, 1, error_rate=50, p99=3, cost_per_request=5),))
    write_hour(logs, errors={"chat-large": 14, "code-small": 6})
    assert failed(judge_hour()) == ["error_rate_anomaly"]


def test_slo_availability_burn_fast_burn_pages(tmp_path, logs, judge_hour):
    seed(tmp_path)
    write_hour(logs, errors={"chat-large": 140, "code-small": 60})  # 20 %: 20x the 1 % budget
    e = judge_hour()["slo_availability_burn"]
    assert not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    assert e.metadata["burn_rate_1h"].value == pytest.approx(20, rel=0.01)
    assert e.metadata["burn_rate_5m"].value >= 14.4
    assert e.metadata["rule"].value == "page: 1h and 5m >= 14.4x"
    assert 0 < e.metadata["budget_left"].value < 1
    assert "of the 30-day error budget left" in e.description


@pytest.mark.slow
def test_slo_availability_burn_spike_over_before_the_hour_ended_does_not_page(tmp_path, logs, judge_hour):
    seed(tmp_path)
    write_hour(logs, errors={"chat-large": 140, "code-small": 60}, errors_before_minute=50)
    e = judge_hour()["slo_availability_burn"]
    assert e.metadata["burn_rate_1h"].value > 14.4
    assert e.metadata["burn_rate_5m"].value == 0
    assert e.passed


@pytest.mark.slow
def test_slo_availability_burn_slow_burn_warns(tmp_path, logs, judge_hour):
    hour = WED_15.replace(tzinfo=None)
    seed(tmp_path, incidents=(Incident(hour - timedelta(hours=72), 72, error_rate=7.5),))  # 1.5 % for 3 days
    write_hour(logs, errors={"chat-large": 11, "code-small": 4})
    e = judge_hour()["slo_availability_burn"]
    assert not e.passed and e.severity == dg.AssetCheckSeverity.WARN
    assert e.metadata["rule"].value == "ticket: 3d and 6h >= 1x"
    assert 1 <= e.metadata["burn_rate_3d"].value < 6
    assert e.metadata["burn_rate_1h"].value < 14.4


@pytest.mark.slow
def test_slo_latency_burn_pages_on_slow_calls(tmp_path, logs, judge_hour, query):
    seed(tmp_path)
    write_hour(logs, slow_chat=True)  # 70 % of calls over 5 s
    evaluations = judge_hour()
    e = evaluations["slo_latency_burn"]
    assert not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    assert e.metadata["burn_rate_1h"].value == pytest.approx(70, rel=0.01)
    assert evaluations["slo_availability_burn"].passed
    assert query("SELECT slow_requests FROM hourly_metrics WHERE hour = ?", [WED_15.replace(tzinfo=None)]) == [(700,)]


@pytest.mark.slow
def test_hourly_metrics_slow_requests_added_to_a_warehouse_from_before(tmp_path, logs, run_hour, query):
    old_hour = datetime(2026, 3, 4, 14)
    with duckdb.connect(str(tmp_path / "monitoring.duckdb")) as conn:
        for table, model in (("hourly_metrics", ""), ("hourly_model_metrics", "model VARCHAR NOT NULL,")):
            conn.execute(
                f"CREATE TABLE {table} (hour TIMESTAMP NOT NULL, {model} requests BIGINT NOT NULL,"
                " errors BIGINT NOT NULL, error_rate DOUBLE, latency_avg_ms DOUBLE, latency_p50_ms DOUBLE,"
                " latency_p95_ms DOUBLE, latency_p99_ms DOUBLE, input_tokens BIGINT NOT NULL,"
                " output_tokens BIGINT NOT NULL, total_tokens BIGINT NOT NULL, cost_usd DOUBLE NOT NULL,"
                " feedback_count BIGINT NOT NULL, feedback_avg DOUBLE, safety_violations BIGINT NOT NULL)"
            )
        conn.execute("INSERT INTO hourly_metrics VALUES (?, 5, 0, 0, 1, 1, 1, 1, 1, 1, 2, 0, 0, NULL, 0)", [old_hour])
    write_hour(logs, chat=10, code=0, slow_chat=True)
    run_hour(partition=partition_key(WED_15), assets=[llm_requests, hourly_metrics])
    assert query("SELECT hour, slow_requests FROM hourly_metrics ORDER BY hour") == [
        (old_hour, None),
        (WED_15.replace(tzinfo=None), 10),
    ]
    assert query("SELECT model, slow_requests FROM hourly_model_metrics") == [("chat-large", 10)]


@pytest.mark.slow
def test_metric_anomalies_evaluator_fail_rates_get_baselines(tmp_path, logs, judge_hour, query):
    seed(tmp_path)
    hour = WED_15.replace(tzinfo=None)
    with duckdb.connect(str(tmp_path / "monitoring.duckdb")) as conn:
        conn.execute(
            "CREATE TABLE hourly_evaluations (hour TIMESTAMP, scope VARCHAR, evaluator VARCHAR,"
            " evaluated BIGINT, failed BIGINT, fail_rate DOUBLE)"
        )
        for k in range(1, 5):
            conn.execute(
                "INSERT INTO hourly_evaluations VALUES (?, 'all', 'json_valid', 1000, 10, 0.01)",
                [hour - timedelta(weeks=k)],
            )
        conn.execute("INSERT INTO hourly_evaluations VALUES (?, 'all', 'json_valid', 1000, 80, 0.08)", [hour])
    write_hour(logs)
    judge_hour()
    rows = query(
        "SELECT value, expected, history, anomalous FROM metric_anomalies WHERE metric = 'fail_rate:json_valid'"
    )
    assert rows == [(0.08, 0.01, 4, True)]


def test_hourly_monitoring_job_runs_metric_anomalies():
    from monitoring_pipeline.definitions import defs

    job = defs.resolve_job_def("hourly_monitoring")
    assert dg.AssetKey("metric_anomalies") in job.asset_layer.executable_asset_keys


@pytest.mark.slow
def test_metric_anomalies_alerts_page_the_fast_burn_and_say_what_was_expected(
    tmp_path, logs, judge_hour, resources, instance, slack
):
    from monitoring_pipeline.defs.alerts.sensors import slack_alert_sensor
    from monitoring_pipeline.resources import Clock

    seed(tmp_path)
    write_hour(logs, errors={"chat-large": 140, "code-small": 60})
    judge_hour()
    at = WED_15 + timedelta(hours=1, minutes=10)
    context = dg.build_sensor_context(instance=instance, resources={**resources, "clock": Clock(fixed=at.isoformat())})
    slack_alert_sensor.evaluate_tick(context)
    by_channel: dict[str, str] = {}
    for m in slack.posted():
        by_channel[m["channel"]] = by_channel.get(m["channel"], "") + str(m["blocks"])
    assert "slo_availability_burn" in by_channel["#llm-alerts-critical"]
    assert "1h burn 20.0x, 5m" in by_channel["#llm-alerts-critical"]
    assert "slo_availability_burn" not in by_channel["#llm-alerts"]
    assert "error rate 20.00% vs 0." in by_channel["#llm-alerts"]
    assert "expected for Wednesday 15:00 (4 weeks)" in by_channel["#llm-alerts"]


@pytest.mark.slow
def test_slo_availability_burn_ticket_waits_for_history_to_cover_its_3_days(tmp_path, logs, judge_hour):
    hour = WED_15.replace(tzinfo=None)
    with duckdb.connect(str(tmp_path / "monitoring.duckdb")) as conn:  # a deployment 2 days old
        Seeder(random.Random(7)).seed(
            conn, hour - timedelta(hours=48), hour, [Incident(hour - timedelta(hours=48), 48, error_rate=7.5)]
        )
    write_hour(logs, errors={"chat-large": 11, "code-small": 4})
    e = judge_hour()["slo_availability_burn"]
    assert e.passed
    assert e.metadata["burn_rate_3d"].value >= 1 and e.metadata["burn_rate_6h"].value >= 1
    assert "rule: 3d and 6h >= 1x not judged: 49 of 72 hours of history" in e.description
