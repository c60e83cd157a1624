"""llm_requests -> hourly_metrics (one row per hour) and hourly_model_metrics (per hour and model),
with the threshold checks judged on them."""

import dagster as dg

from monitoring_pipeline.defs.metrics.checks import THRESHOLD_CHECKS, check_specs, evaluate
from monitoring_pipeline.lib import hourly, markdown
from monitoring_pipeline.lib.db import fetch_dicts, transaction
from monitoring_pipeline.lib.partitions import hourly_partitions
from monitoring_pipeline.resources import DuckDBWarehouse, MonitoringSettings

METRIC_COLUMNS = """
    requests BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    error_rate DOUBLE,
    latency_avg_ms DOUBLE,
    latency_p50_ms DOUBLE,
    latency_p95_ms DOUBLE,
    latency_p99_ms DOUBLE,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    total_tokens BIGINT NOT NULL,
    cost_usd DOUBLE NOT NULL,
    feedback_count BIGINT NOT NULL,
    feedback_avg DOUBLE,
    safety_violations BIGINT NOT NULL
"""
HOURLY_METRICS_DDL = f"CREATE TABLE IF NOT EXISTS hourly_metrics (hour TIMESTAMP NOT NULL, {METRIC_COLUMNS})"
HOURLY_MODEL_METRICS_DDL = f"CREATE TABLE IF NOT EXISTS hourly_model_metrics (hour TIMESTAMP NOT NULL, model VARCHAR NOT NULL, {METRIC_COLUMNS})"

# Same aggregates for both tables; NULL (not 0) where an hour has no evidence.
AGGREGATES = """
    count(*) AS requests,
    count(*) FILTER (status = 'error') AS errors,
    count(*) FILTER (status = 'error') / nullif(count(*), 0) AS error_rate,
    avg(latency_ms) AS latency_avg_ms,
    quantile_cont(latency_ms, 0.50) AS latency_p50_ms,
    quantile_cont(latency_ms, 0.95) AS latency_p95_ms,
    quantile_cont(latency_ms, 0.99) AS latency_p99_ms,
    coalesce(sum(input_tokens), 0) AS input_tokens,
    coalesce(sum(output_tokens), 0) AS output_tokens,
    coalesce(sum(input_tokens + output_tokens), 0) AS total_tokens,
    coalesce(sum(input_tokens * coalesce(p.input_per_mtok, $default_in)
                 + output_tokens * coalesce(p.output_per_mtok, $default_out)) / 1e6, 0) AS cost_usd,
    count(feedback) AS feedback_count,
    avg(feedback) AS feedback_avg,
    count(*) FILTER (len(safety_flags) > 0) AS safety_violations
"""
SOURCE = """
FROM llm_requests r
LEFT JOIN (SELECT unnest($models) AS model, unnest($in_prices) AS input_per_mtok,
                  unnest($out_prices) AS output_per_mtok) p USING (model)
WHERE r.hour = $hour
"""

PLOTTED = (
    "requests",
    "error_rate",
    "latency_avg_ms",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "total_tokens",
    "cost_usd",
    "feedback_avg",
    "safety_violations",
)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "hourly_metrics",
            deps=["llm_requests"],
            group_name="metrics",
            kinds={"duckdb"},
            description="Latency, errors, tokens and cost, feedback and safety for the hour: one row.",
        ),
        dg.AssetSpec(
            "hourly_model_metrics",
            deps=["llm_requests"],
            group_name="metrics",
            kinds={"duckdb"},
            description="The same figures per model, to tell which model drove a change.",
        ),
    ],
    check_specs=check_specs(hourly_partitions),
    partitions_def=hourly_partitions,
    pool="duckdb",
    can_subset=True,  # a range run reports each hour's checks as evaluations, not as the checks' outputs
    backfill_policy=hourly.BACKFILL_POLICY,
)
@hourly.per_hour
def hourly_metrics(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse, settings: MonitoringSettings):
    """Hourly metrics, overall and per model, and the threshold checks on them."""
    config = settings.load()
    hour = context.partition_time_window.start.replace(tzinfo=None)
    priced = {m: p for m, p in config.prices.items() if m != "default"}
    params = {
        "hour": hour,
        "models": list(priced),
        "in_prices": [p.input_per_mtok for p in priced.values()],
        "out_prices": [p.output_per_mtok for p in priced.values()],
        "default_in": config.prices["default"].input_per_mtok,
        "default_out": config.prices["default"].output_per_mtok,
    }
    with warehouse.get_connection() as conn:
        conn.execute(HOURLY_METRICS_DDL)
        conn.execute(HOURLY_MODEL_METRICS_DDL)
        with transaction(conn):
            conn.execute("DELETE FROM hourly_metrics WHERE hour = $hour", {"hour": hour})
            conn.execute("DELETE FROM hourly_model_metrics WHERE hour = $hour", {"hour": hour})
            conn.execute(f"INSERT INTO hourly_metrics SELECT $hour, {AGGREGATES} {SOURCE}", params)
            conn.execute(
                f"INSERT INTO hourly_model_metrics SELECT $hour, model, {AGGREGATES} {SOURCE} GROUP BY model", params
            )
        overall = fetch_dicts(conn, "SELECT * FROM hourly_metrics WHERE hour = $hour", {"hour": hour})[0]
        per_model = fetch_dicts(
            conn, "SELECT * FROM hourly_model_metrics WHERE hour = $hour ORDER BY model", {"hour": hour}
        )

    yield dg.MaterializeResult(
        asset_key="hourly_metrics",
        metadata={k: float(overall[k]) for k in PLOTTED if overall[k] is not None},
    )
    yield dg.MaterializeResult(
        asset_key="hourly_model_metrics",
        metadata={
            "models": len(per_model),
            "by_model": dg.MetadataValue.md(_model_table(per_model)),
            **{
                f"{r['model']}/{k}": float(r[k])
                for r in per_model
                for k in ("latency_p99_ms", "error_rate")
                if r[k] is not None
            },
        },
    )
    for check in THRESHOLD_CHECKS:
        yield evaluate(check, overall, per_model, config)


def _model_table(rows: list[dict]) -> str:
    def fmt(value, spec):
        return "n/a" if value is None else format(value, spec)

    return markdown.table(
        ["model", "requests", "error rate", "p99 ms", "tokens", "cost USD", "feedback", "safety"],
        [
            (
                r["model"],
                r["requests"],
                fmt(r["error_rate"], ".2%"),
                fmt(r["latency_p99_ms"], ".0f"),
                r["total_tokens"],
                fmt(r["cost_usd"], ".4f"),
                fmt(r["feedback_avg"], ".2f"),
                r["safety_violations"],
            )
            for r in rows
        ],
    )
