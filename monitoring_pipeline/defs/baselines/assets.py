"""hourly_metrics (+ hourly_evaluations when it exists) -> metric_anomalies: the hour against its
baseline (the same hour of the week over the previous weeks), with the anomaly and SLO burn checks."""

from collections.abc import Iterator

import dagster as dg

from monitoring_pipeline.defs.baselines import anomalies, slo
from monitoring_pipeline.defs.baselines.sql import METRIC_ANOMALIES_DDL
from monitoring_pipeline.lib import hourly
from monitoring_pipeline.lib.db import transaction
from monitoring_pipeline.lib.partitions import hourly_partitions
from monitoring_pipeline.resources import DuckDBWarehouse, MonitoringSettings

SLO_DESCRIPTIONS = {
    slo.SLO_AVAILABILITY_BURN: "Error budget of the availability SLO burning fast (ERROR: page) or slowly (WARN: ticket).",
    slo.SLO_LATENCY_BURN: "Error budget of the latency SLO burning fast (ERROR: page) or slowly (WARN: ticket).",
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "metric_anomalies",
            deps=["hourly_metrics", "hourly_model_metrics", "llm_requests", "hourly_evaluations"],
            group_name="baselines",
            kinds={"duckdb"},
            description="Each metric of the hour, overall and per model, against the same hour of the week.",
        )
    ],
    can_subset=True,  # a range run reports each hour's checks as evaluations (lib/hourly.py)
    backfill_policy=hourly.BACKFILL_POLICY,
    partitions_def=hourly_partitions,
    check_specs=[
        *anomalies.check_specs(hourly_partitions),
        *(
            dg.AssetCheckSpec(name, asset="metric_anomalies", description=text, partitions_def=hourly_partitions)
            for name, text in SLO_DESCRIPTIONS.items()
        ),
    ],
    pool="duckdb",
)
@hourly.per_run
def metric_anomalies(
    context: dg.AssetExecutionContext, hours: hourly.Hours, warehouse: DuckDBWarehouse, settings: MonitoringSettings
) -> Iterator[hourly.HourResults]:
    """Each metric of the hour, overall and per model, against the same hour of the week."""
    config = settings.load()
    with warehouse.get_connection() as conn:
        conn.execute(METRIC_ANOMALIES_DDL)
        rows = anomalies.baselines(conn, hours.starts, config)
        with transaction(conn):
            conn.execute("DELETE FROM metric_anomalies WHERE hour >= $start AND hour < $end", hours.window)
            anomalies.write(conn, rows)
        counts = slo.window_counts(conn, hours.starts, config)

    by_hour: dict = {}
    for row in rows:
        by_hour.setdefault(row["hour"], []).append(row)
    for key, hour in hours:
        mine = by_hour.get(hour, [])
        checks = [anomalies.evaluate(c, mine, hour, config) for c in anomalies.ANOMALY_CHECKS]
        checks += [slo.evaluate(s, counts[hour], config) for s in slo.slos(config)]
        result: dg.MaterializeResult = dg.MaterializeResult(
            asset_key="metric_anomalies",
            metadata={
                "anomalies": sum(1 for r in mine if r["anomalous"]),
                "metrics": len(mine),
                "history_weeks": max((r["history"] for r in mine), default=0),
            },
            check_results=checks,
        )
        yield hourly.HourResults(key, [result])
