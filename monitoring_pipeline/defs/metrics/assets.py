"""llm_requests -> hourly_metrics (one row per hour) and hourly_model_metrics (per hour and model),
with the threshold checks judged on them."""

from collections.abc import Iterator

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
    input_tokens HUGEINT NOT NULL,  -- 128-bit: no line, however absurd, overflows an hour's sum
    output_tokens HUGEINT NOT NULL,
    total_tokens HUGEINT NOT NULL,
    cost_usd DOUBLE NOT NULL,
    feedback_count BIGINT NOT NULL,
    feedback_avg DOUBLE,
    safety_violations BIGINT NOT NULL,
    slow_requests BIGINT
"""
HOURLY_METRICS_DDL = f"CREATE TABLE IF NOT EXISTS hourly_metrics (hour TIMESTAMP NOT NULL, {METRIC_COLUMNS})"
HOURLY_MODEL_METRICS_DDL = f"CREATE TABLE IF NOT EXISTS hourly_model_metrics (hour TIMESTAMP NOT NULL, model VARCHAR NOT NULL, {METRIC_COLUMNS})"
# Columns added after the tables were first created: a warehouse from before gets them (NULL for
# the hours it already holds; readers of history treat NULL as unknown, not 0).
ADDED_COLUMNS = [
    f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS slow_requests BIGINT"
    for table in ("hourly_metrics", "hourly_model_metrics")
]

# Same aggregates for both tables; NULL (not 0) where an hour has no evidence. count(r.hour), not
# count(*): an hour without calls is one row of SOURCE with r's columns all NULL.
AGGREGATES = """
    count(r.hour) AS requests,
    count(*) FILTER (status = 'error') AS errors,
    count(*) FILTER (status = 'error') / nullif(count(r.hour), 0) AS error_rate,
    avg(latency_ms) AS latency_avg_ms,
    quantile_cont(latency_ms, 0.50) AS latency_p50_ms,
    quantile_cont(latency_ms, 0.95) AS latency_p95_ms,
    quantile_cont(latency_ms, 0.99) AS latency_p99_ms,
    coalesce(sum(input_tokens::HUGEINT), 0) AS input_tokens,
    coalesce(sum(output_tokens::HUGEINT), 0) AS output_tokens,
    coalesce(sum(input_tokens::HUGEINT + output_tokens), 0) AS total_tokens,
    coalesce(sum(input_tokens * coalesce(p.input_per_mtok, $default_in)
                 + output_tokens * coalesce(p.output_per_mtok, $default_out)) / 1e6, 0) AS cost_usd,
    count(feedback) AS feedback_count,
    avg(feedback) AS feedback_avg,
    count(*) FILTER (len(safety_flags) > 0) AS safety_violations,
    count(*) FILTER (latency_ms > $slow_ms) AS slow_requests  -- the latency SLO's bad calls
"""
# Every hour of the run, with its calls (none: one row of NULLs, so the hour still gets its row).
SOURCE = """
FROM (SELECT unnest($hours::TIMESTAMP[]) AS hour) h
LEFT JOIN (SELECT * FROM llm_requests WHERE hour >= $start AND hour < $end) r USING (hour)
LEFT JOIN (SELECT unnest($models) AS model, unnest($in_prices) AS input_per_mtok,
                  unnest($out_prices) AS output_per_mtok) p USING (model)
"""

WIDE_COLUMNS = ("input_tokens", "output_tokens", "total_tokens")


def _widen(conn, table: str) -> None:
    """Tables created before the token sums were 128-bit get their columns widened once."""
    narrow = conn.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = $t AND schema_name = 'main'"
        " AND data_type = 'BIGINT' AND list_contains($wide, column_name)",
        {"t": table, "wide": list(WIDE_COLUMNS)},
    ).fetchall()
    for (column,) in narrow:  # names from WIDE_COLUMNS only
        conn.execute(f"ALTER TABLE {table} ALTER {column} TYPE HUGEINT")


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
@hourly.per_run
def hourly_metrics(
    context: dg.AssetExecutionContext, hours: hourly.Hours, warehouse: DuckDBWarehouse, settings: MonitoringSettings
) -> Iterator[hourly.HourResults]:
    """Hourly metrics, overall and per model, and the threshold checks on them."""
    config = settings.load()
    priced = {m: p for m, p in config.prices.items() if m != "default"}
    params = {
        **hours.window,
        "hours": hours.starts,
        "models": list(priced),
        "in_prices": [p.input_per_mtok for p in priced.values()],
        "out_prices": [p.output_per_mtok for p in priced.values()],
        "default_in": config.prices["default"].input_per_mtok,
        "default_out": config.prices["default"].output_per_mtok,
        "slow_ms": config.slos.latency.threshold_ms,
    }
    in_window = "WHERE hour >= $start AND hour < $end"
    with warehouse.get_connection() as conn:
        conn.execute(HOURLY_METRICS_DDL)
        conn.execute(HOURLY_MODEL_METRICS_DDL)
        _widen(conn, "hourly_metrics")
        _widen(conn, "hourly_model_metrics")
        for statement in ADDED_COLUMNS:
            conn.execute(statement)
        with transaction(conn):
            conn.execute(f"DELETE FROM hourly_metrics {in_window}", hours.window)
            conn.execute(f"DELETE FROM hourly_model_metrics {in_window}", hours.window)
            # BY NAME: a table that got a column by ALTER has it last, whatever METRIC_COLUMNS says
            conn.execute(
                f"INSERT INTO hourly_metrics BY NAME SELECT h.hour, {AGGREGATES} {SOURCE} GROUP BY h.hour", params
            )
            conn.execute(
                f"INSERT INTO hourly_model_metrics BY NAME SELECT h.hour, model, {AGGREGATES} {SOURCE}"
                " WHERE r.hour IS NOT NULL GROUP BY h.hour, model",
                params,
            )
        overall = {r["hour"]: r for r in fetch_dicts(conn, f"SELECT * FROM hourly_metrics {in_window}", hours.window)}
        per_model: dict = {}
        for row in fetch_dicts(conn, f"SELECT * FROM hourly_model_metrics {in_window} ORDER BY model", hours.window):
            per_model.setdefault(row["hour"], []).append(row)

    thresholds = {c.metric: config.threshold(c.threshold_key) for c in THRESHOLD_CHECKS}
    for key, hour in hours:
        yield hourly.HourResults(key, _hour_results(overall[hour], per_model.get(hour, []), thresholds, config))


def _hour_results(overall: dict, per_model: list[dict], thresholds: dict, config) -> list:
    return [
        dg.MaterializeResult(
            asset_key="hourly_metrics",
            metadata={
                **_plotted(overall),
                # Beside each judged figure, the line it is judged against: both plot on one chart.
                **{f"threshold/{metric}": _rounded(metric, value) for metric, value in thresholds.items()},
                "summary": dg.MetadataValue.md(_summary_table(overall, thresholds)),
            },
        ),
        dg.MaterializeResult(
            asset_key="hourly_model_metrics",
            metadata={
                "models": len(per_model),
                "by_model": dg.MetadataValue.md(_model_table(per_model)),
                **{f"{r['model']}/{k}": v for r in per_model for k, v in _plotted(r).items()},
            },
        ),
        *(evaluate(check, overall, per_model, config) for check in THRESHOLD_CHECKS),
    ]


# Digits kept per figure: enough to read a change, not float noise in the plots' tooltips.
DIGITS = {"error_rate": 6, "cost_usd": 6, "feedback_avg": 3}
FORMATS = {"error_rate": ".2%", "cost_usd": ",.4f", "feedback_avg": ".2f"}


def _rounded(metric: str, value) -> float | int:
    if metric.endswith("_ms"):
        return round(float(value), 1)
    if metric in DIGITS:
        return round(float(value), DIGITS[metric])
    return int(value)


def _plotted(row: dict) -> dict:
    """The numeric metadata of one row: every plotted figure that has evidence (NULL: none)."""
    return {k: _rounded(k, row[k]) for k in PLOTTED if row[k] is not None}


def _fmt(metric: str, value) -> str:
    if value is None:
        return "n/a"
    return format(value, FORMATS.get(metric, ",.0f"))


def _summary_table(row: dict, thresholds: dict) -> str:
    return markdown.table(
        ["figure", "value", "threshold"],
        [(k, _fmt(k, row[k]), _fmt(k, thresholds[k]) if k in thresholds else "") for k in PLOTTED],
    )


def _model_table(rows: list[dict]) -> str:
    columns = [
        ("requests", "requests"),
        ("error_rate", "error rate"),
        ("latency_avg_ms", "avg ms"),
        ("latency_p50_ms", "p50 ms"),
        ("latency_p95_ms", "p95 ms"),
        ("latency_p99_ms", "p99 ms"),
        ("total_tokens", "tokens"),
        ("cost_usd", "cost USD"),
        ("feedback_avg", "feedback"),
        ("safety_violations", "safety"),
    ]
    return markdown.table(
        ["model", *(label for _, label in columns)],
        [(r["model"], *(_fmt(k, r[k]) for k, _ in columns)) for r in rows],
    )
