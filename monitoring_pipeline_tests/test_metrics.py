"""Metrics and their threshold checks, on real materializations."""

import duckdb
import pytest

from monitoring_pipeline.defs.ingest.assets import llm_requests
from monitoring_pipeline.defs.metrics.assets import HOURLY_METRICS_DDL, hourly_metrics
from monitoring_pipeline.defs.metrics.checks import THRESHOLD_CHECKS
from monitoring_pipeline_tests.conftest import PARTITION, record

METRICS = [llm_requests, hourly_metrics]


def checks(result) -> dict:
    return {
        e.check_name: e
        for e in result.get_asset_check_evaluations()
        if e.asset_key.to_user_string() == "hourly_metrics"
    }


def test_metrics_values_overall_and_per_model(logs, run_hour, query, config_file):
    config_file(
        {
            "prices": {
                "chat-large": {"input_per_mtok": 2.0, "output_per_mtok": 10.0},
                "default": {"input_per_mtok": 1.0, "output_per_mtok": 1.0},
            }
        }
    )
    latencies = [100.0 * (i + 1) for i in range(100)]  # 100 .. 10,000 ms
    recs = [
        record(
            i,
            latency_ms=latencies[i],
            model="chat-large" if i < 80 else "other",
            status="error" if i in (0, 1) else "ok",
            feedback=[None, 5, 2][i % 3],
            safety_flags=["pii"] if i == 50 else [],
        )
        for i in range(100)
    ]
    logs.records(recs)
    result = run_hour(assets=METRICS)
    (row,) = query("SELECT * EXCLUDE (hour) FROM hourly_metrics")
    cols = [r[0] for r in query("SELECT name FROM pragma_table_info('hourly_metrics') WHERE name <> 'hour'")]
    m = dict(zip(cols, row, strict=False))
    assert m["requests"] == 100 and m["errors"] == 2 and m["error_rate"] == pytest.approx(0.02)
    assert m["latency_avg_ms"] == pytest.approx(5050)
    assert m["latency_p50_ms"] == pytest.approx(5050)  # continuous quantile
    assert m["latency_p99_ms"] == pytest.approx(9901)
    assert m["input_tokens"] == 10_000 and m["output_tokens"] == 5_000 and m["total_tokens"] == 15_000
    # 80 chat-large calls at $2/$10 per Mtok, 20 others at the default $1/$1
    assert m["cost_usd"] == pytest.approx((80 * 100 * 2 + 80 * 50 * 10 + 20 * 150 * 1) / 1e6)
    assert m["feedback_count"] == 66 and m["feedback_avg"] == pytest.approx((33 * 5 + 33 * 2) / 66)
    assert m["safety_violations"] == 1
    per_model = query("SELECT model, requests, errors FROM hourly_model_metrics ORDER BY model")
    assert per_model == [("chat-large", 80, 2), ("other", 20, 0)]
    meta = result.asset_materializations_for_node("hourly_metrics")
    plotted = {m.asset_key.to_user_string(): m.metadata for m in meta}
    assert plotted["hourly_metrics"]["latency_p99_ms"].value == pytest.approx(9901)
    assert plotted["hourly_model_metrics"]["chat-large/error_rate"].value == pytest.approx(2 / 80)


@pytest.mark.slow
def test_metrics_rerun_replaces_the_hour(logs, run_hour, query):
    logs.records([record(i) for i in range(10)])
    run_hour(assets=METRICS)
    run_hour(assets=METRICS)
    assert query("SELECT count(*), sum(requests) FROM hourly_metrics") == [(1, 10)]
    assert query("SELECT count(*) FROM hourly_model_metrics") == [(1,)]


@pytest.mark.slow
def test_metrics_empty_hour_has_one_row_and_passing_checks(run_hour, query):
    result = run_hour(assets=METRICS)
    assert query("SELECT requests, error_rate, latency_p99_ms FROM hourly_metrics") == [(0, None, None)]
    assert all(e.passed for e in checks(result).values())


def test_checks_all_pass_on_a_healthy_hour(logs, run_hour):
    logs.records([record(i, feedback=5) for i in range(200)])
    evaluations = checks(run_hour(assets=METRICS))
    assert sorted(evaluations) == [
        "error_rate",
        "feedback_score",
        "latency_avg",
        "latency_p99",
        "safety_violations",
        "token_budget",
    ]
    assert all(e.passed for e in evaluations.values())
    assert all(e.partition == PARTITION for e in evaluations.values())


# `make test-fast` runs error_rate's case; `make test` runs every check's.
@pytest.mark.parametrize(
    "check, bad, good",
    [
        # p99 > 5000 ms: 2 % of calls at 20 s push p99 over; 0.5 % do not
        pytest.param(
            "latency_p99",
            lambda i: {"latency_ms": 20_000.0 if i < 4 else 500.0},
            lambda i: {"latency_ms": 20_000.0 if i < 1 else 500.0},
            marks=pytest.mark.slow,
        ),
        pytest.param(
            "latency_avg", lambda i: {"latency_ms": 3_100.0}, lambda i: {"latency_ms": 3_000.0}, marks=pytest.mark.slow
        ),
        (
            "error_rate",
            lambda i: {"status": "error" if i < 3 else "ok"},
            lambda i: {"status": "error" if i < 2 else "ok"},
        ),
        pytest.param(
            "token_budget",
            lambda i: {"input_tokens": 25_000, "output_tokens": 1 if i == 0 else 0},
            lambda i: {"input_tokens": 25_000, "output_tokens": 0},
            marks=pytest.mark.slow,
        ),
        pytest.param(
            "feedback_score",
            lambda i: {"feedback": 2 if i % 2 else 3},
            lambda i: {"feedback": 3},
            marks=pytest.mark.slow,
        ),
        pytest.param(
            "safety_violations",
            lambda i: {"safety_flags": ["violence"] if i == 7 else []},
            lambda i: {"safety_flags": []},
            marks=pytest.mark.slow,
        ),
    ],
)
def test_each_check_fails_over_and_passes_at_its_threshold(logs, run_hour, check, bad, good):
    logs.records([record(i, **bad(i)) for i in range(200)])
    failed = checks(run_hour(assets=METRICS))[check]
    assert not failed.passed
    assert {"value", "threshold", "sample_size"} <= set(failed.metadata)
    assert failed.metadata["breaches"].value[0]["scope"] == "all"
    logs.records([record(i, **good(i)) for i in range(200)])
    assert checks(run_hour(assets=METRICS))[check].passed


@pytest.mark.slow
def test_check_defaults_and_severity(logs, run_hour):
    logs.records([record(i, latency_ms=6000.0, safety_flags=["x"]) for i in range(50)])
    evaluations = checks(run_hour(assets=METRICS))
    p99 = evaluations["latency_p99"]
    assert p99.metadata["threshold"].value == 5000 and p99.metadata["sample_size"].value == 50
    assert evaluations["latency_avg"].metadata["threshold"].value == 3000
    assert evaluations["error_rate"].metadata["threshold"].value == 0.01
    assert evaluations["feedback_score"].metadata["threshold"].value == 3
    assert evaluations["safety_violations"].severity.value == "ERROR"
    assert p99.severity.value == "WARN"


@pytest.mark.slow
def test_check_per_model_override_and_breakdown(logs, run_hour, config_file):
    """A slow model allowed 8 s passes at 6 s; a fast model breaching 5 s fails and is named."""
    config_file({"models": {"slow-reasoner": {"latency_p99_ms": 8000}}})
    recs = [record(i, model="slow-reasoner", latency_ms=6000.0) for i in range(20)]
    recs += [record(i, model="fast", latency_ms=400.0) for i in range(20, 200)]
    logs.records(recs)
    p99 = checks(run_hour(assets=METRICS))["latency_p99"]
    assert p99.passed, p99.metadata["scopes"].value  # the hour's mixed p99 (6 s) is not judged
    recs += [record(i, model="fast", latency_ms=9000.0) for i in range(200, 220)]
    logs.records(recs)
    p99 = checks(run_hour(assets=METRICS))["latency_p99"]
    assert not p99.passed
    assert [b["scope"] for b in p99.metadata["breaches"].value] == ["fast"]
    assert "| slow-reasoner | 6000 | 8000 | 20 | ok |" in p99.metadata["scopes"].value


@pytest.mark.slow
def test_check_min_sample_keeps_a_tiny_hour_quiet(logs, run_hour):
    logs.records([record(i, latency_ms=9000.0) for i in range(19)])  # p99 needs 20 by default
    evaluations = checks(run_hour(assets=METRICS))
    assert evaluations["latency_p99"].passed
    assert not evaluations["latency_avg"].passed  # the mean needs 1


@pytest.mark.slow
def test_token_budget_per_model(logs, run_hour, config_file):
    config_file({"models": {"chat-large": {"hourly_token_budget": 1000}}})
    logs.records([record(i, input_tokens=100, output_tokens=10) for i in range(10)])  # 1,100 tokens
    budget = checks(run_hour(assets=METRICS))["token_budget"]
    assert not budget.passed
    assert budget.metadata["breaches"].value == [
        {"scope": "chat-large", "value": 1100, "threshold": 1000, "sample_size": 10}
    ]


def test_check_result_explains_a_model_breach_the_hour_hides(logs, run_hour):
    """latency_avg fails on one model while the hour's mean passes: the result says which model,
    shows its figure as the value, and keeps the scopes table."""
    recs = [record(i, model="chat-large", latency_ms=3_200.0) for i in range(40)]
    recs += [record(i, model="code-small", latency_ms=1_000.0) for i in range(40, 200)]
    logs.records(recs)
    avg = checks(run_hour(assets=METRICS))["latency_avg"]
    assert not avg.passed
    assert (
        avg.description == "model chat-large: mean latency 3,200 ms > 3,000 ms (n=40); all traffic 1,440 ms ok (n=200)"
    )
    md = {k: v.value for k, v in avg.metadata.items()}
    assert (md["scope"], md["value"], md["threshold"], md["sample_size"]) == ("chat-large", 3200, 3000, 40)
    assert "| code-small | 1000 | 3000 | 160 | ok |" in md["scopes"]
    assert md["breaches"] == [{"scope": "chat-large", "value": 3200, "threshold": 3000, "sample_size": 40}]


@pytest.mark.slow
def test_metrics_an_absurd_token_count_costs_the_hour_nothing(logs, run_hour, query):
    """A line at 2**63-1 tokens used to be valid and overflow the hour's token sums, so the hour
    lost its metrics, checks and alerts: now it is quarantined, and the largest valid count sums."""
    logs.records(
        [
            record(0),
            record(1, input_tokens=10**12, output_tokens=10**12),
            record(2, input_tokens=2**63 - 1),
            record(3, output_tokens=2**63 - 1),
        ]
    )
    result = run_hour(assets=METRICS)
    assert result.success and len(checks(result)) == len(THRESHOLD_CHECKS)
    assert query("SELECT reason FROM quarantine ORDER BY line_number") == [
        ("invalid_value:input_tokens",),
        ("invalid_value:output_tokens",),
    ]
    assert query("SELECT requests, input_tokens, total_tokens FROM hourly_metrics") == [
        (2, 10**12 + 100, 2 * 10**12 + 150)
    ]


@pytest.mark.slow
def test_metrics_token_sums_are_wide_even_for_rows_beyond_the_contract(logs, run_hour, query, tmp_path):
    """Defence in depth: rows loaded before the contract had bounds (or by hand) still sum, exactly,
    and a table created with the old 64-bit columns is widened."""
    logs.records([record(0), record(1)])
    run_hour(assets=[llm_requests])
    with duckdb.connect(str(tmp_path / "monitoring.duckdb")) as conn:
        conn.execute("UPDATE llm_requests SET input_tokens = $big, output_tokens = $big", {"big": 2**63 - 1})
        conn.execute(HOURLY_METRICS_DDL.replace("HUGEINT", "BIGINT"))
    result = run_hour(assets=[hourly_metrics])
    assert result.success
    assert query("SELECT input_tokens, total_tokens FROM hourly_metrics") == [(2 * (2**63 - 1), 4 * (2**63 - 1))]
    assert query(
        "SELECT data_type FROM duckdb_columns() WHERE table_name = 'hourly_metrics' AND column_name = 'total_tokens'"
    ) == [("HUGEINT",)]


@pytest.mark.slow
def test_metrics_metadata_plots_every_figure_per_model_with_thresholds(logs, run_hour, config_file):
    config_file({"thresholds": {"latency_p99_ms": 4000}})
    recs = [
        record(i, latency_ms=100.0 + i / 3, model="chat-large" if i % 2 else "code-small", feedback=[None, 4][i % 2])
        for i in range(30)
    ]
    logs.records(recs)
    mats = {
        m.asset_key.to_user_string(): m.metadata
        for m in run_hour(assets=METRICS).asset_materializations_for_node("hourly_metrics")
    }
    overall, by_model = mats["hourly_metrics"], mats["hourly_model_metrics"]
    assert overall["threshold/latency_p99_ms"].value == 4000
    assert overall["threshold/error_rate"].value == 0.01
    assert overall["threshold/total_tokens"].value == 5_000_000
    assert overall["threshold/feedback_avg"].value == 3
    assert overall["requests"].value == 30 and overall["total_tokens"].value == 30 * 150
    assert overall["latency_avg_ms"].value == round(100 + 14.5 / 3, 1)  # 104.8333.. plotted as 104.8
    for model in ("chat-large", "code-small"):
        for figure in (
            "requests",
            "latency_avg_ms",
            "latency_p50_ms",
            "latency_p95_ms",
            "latency_p99_ms",
            "error_rate",
            "total_tokens",
            "cost_usd",
            "safety_violations",
        ):
            assert f"{model}/{figure}" in by_model, f"{model}/{figure}"
    assert by_model["chat-large/feedback_avg"].value == 4.0
    assert "code-small/feedback_avg" not in by_model  # no ratings: no point, not a zero
    assert by_model["code-small/requests"].value == 15
    assert by_model["chat-large/latency_p50_ms"].value == round(100 + 15 / 3, 1)
    table = by_model["by_model"].value
    assert "| chat-large | 15 | 0.00% | 105 | 105 | " in table  # rounded, not 105.0000001
    assert "| latency_p99_ms | " in overall["summary"].value and "| 4,000 |" in overall["summary"].value
