"""llm_requests -> evaluation_flags (one row per call and evaluator that flagged it) and
hourly_evaluations (per hour, scope and evaluator), with one check per evaluator.

Custom evaluators come from the config, and their checks must be declared when the code location
loads, so the assets are built from the config (`evaluation_assets`); a bad evaluator fails the
load with its name instead of a run hours later.
"""

import time
from collections.abc import Iterator

import dagster as dg

from monitoring_pipeline.config import MonitoringConfig
from monitoring_pipeline.defs.evaluation.evaluators import Evaluator, all_evaluators
from monitoring_pipeline.defs.evaluation.sql import (
    EVALUATION_FLAGS_DDL,
    HOURLY_EVALUATIONS_DDL,
    REDACT_IF_NEEDED_MACRO,
    insert_flags_sql,
    insert_hourly_sql,
    judge_sql,
)
from monitoring_pipeline.defs.review import redaction
from monitoring_pipeline.lib import hourly, markdown
from monitoring_pipeline.lib.checks import check_result, judge
from monitoring_pipeline.lib.db import fetch_dicts, transaction
from monitoring_pipeline.lib.partitions import hourly_partitions
from monitoring_pipeline.resources import DuckDBWarehouse, MonitoringSettings


def evaluate_window(conn, hours: hourly.Hours, evaluators: list[Evaluator]) -> None:
    """Replace the rows of the run's hours in both tables (one transaction). The tables, macros and
    patterns are set up once for the whole window: per hour they cost more than the hour's work."""
    conn.execute(EVALUATION_FLAGS_DDL)
    conn.execute(HOURLY_EVALUATIONS_DDL)
    redaction.install(conn)  # redact() for the evidence, luhn_ok() for cards
    conn.execute(REDACT_IF_NEEDED_MACRO)
    with transaction(conn):
        conn.execute("DELETE FROM evaluation_flags WHERE hour >= $start AND hour < $end", hours.window)
        conn.execute("DELETE FROM hourly_evaluations WHERE hour >= $start AND hour < $end", hours.window)
        conn.execute(judge_sql(evaluators), hours.window)
        conn.execute(insert_flags_sql(evaluators))
        conn.execute(insert_hourly_sql(evaluators), {"hours": hours.starts})
    conn.execute("DROP TABLE IF EXISTS _evaluated")


def judge_evaluator(e: Evaluator, rows: list[dict], config: MonitoringConfig) -> dg.AssetCheckResult:
    """The evaluator's check on the hour and on each model, with min_sample like every check."""
    min_sample = config.min_sample.get(e.check, 1)
    scopes = [
        judge(
            r["scope"],
            float(r["failed"]) if e.counts else r["fail_rate"],
            e.threshold,
            r["evaluated"],
            min_sample=min_sample,
            breached=(r["failed"] > e.threshold) if e.counts and r["evaluated"] else None,
        )
        for r in sorted(rows, key=lambda r: (r["scope"] != "all", r["scope"]))
    ]
    return check_result(
        e.check,
        "hourly_evaluations",
        scopes,
        severity=e.severity,
        what=e.what,
        unit="requests" if e.counts else "%",
        min_sample=min_sample,
    )


def evaluation_assets(config: MonitoringConfig) -> dg.AssetsDefinition:
    """Both evaluation assets and the checks of the evaluators `config` declares."""
    declared = all_evaluators(config)

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                "evaluation_flags",
                deps=["llm_requests"],
                group_name="evaluation",
                kinds={"duckdb"},
                description="Every call an evaluator flagged, with its redacted evidence: one row per call and evaluator.",
            ),
            dg.AssetSpec(
                "hourly_evaluations",
                deps=["evaluation_flags"],
                group_name="evaluation",
                kinds={"duckdb"},
                description="Per hour, scope (all or a model) and evaluator: calls judged, flagged, and the fail rate.",
            ),
        ],
        check_specs=[
            dg.AssetCheckSpec(
                e.check, asset="hourly_evaluations", description=e.description, partitions_def=hourly_partitions
            )
            for e in declared
        ],
        partitions_def=hourly_partitions,
        can_subset=True,  # a range run reports each hour's checks as evaluations (lib/hourly.py)
        backfill_policy=hourly.BACKFILL_POLICY,
        pool="duckdb",
        name="evaluations",
    )
    @hourly.per_run
    def evaluations(
        context: dg.AssetExecutionContext, hours: hourly.Hours, warehouse: DuckDBWarehouse, settings: MonitoringSettings
    ) -> Iterator[hourly.HourResults]:
        """Run every evaluator over every call of the run's hours, in SQL."""
        config = settings.load()
        evaluators = all_evaluators(config)
        checked = {e.check for e in declared}
        for e in evaluators:
            if e.check not in checked:
                context.log.warning(
                    f"Evaluator {e.name} is in the config but its check {e.check} was not declared when the code "
                    "location loaded: reload it. Its flags are recorded, its check is not run."
                )
        started = time.monotonic()
        with warehouse.get_connection() as conn:
            evaluate_window(conn, hours, evaluators)
            seconds = (time.monotonic() - started) / len(hours)  # each hour's share of the run's
            rows = fetch_dicts(
                conn,
                "SELECT * FROM hourly_evaluations WHERE hour >= $start AND hour < $end ORDER BY hour, evaluator, scope",
                hours.window,
            )
            flags = conn.execute(
                "SELECT hour, evaluator, model, request_id, evidence FROM evaluation_flags "
                "WHERE hour >= $start AND hour < $end "
                "QUALIFY row_number() OVER (PARTITION BY hour ORDER BY evaluator, request_id) <= 20 "
                "ORDER BY hour, evaluator, request_id",
                hours.window,
            ).fetchall()

        for key, hour in hours:
            hour_rows = [r for r in rows if r["hour"] == hour]
            hour_flags = [f[1:] for f in flags if f[0] == hour]
            yield hourly.HourResults(key, _hour_results(hour_rows, hour_flags, seconds, evaluators, checked, config))

    return evaluations


def _hour_results(
    rows: list[dict], flags: list[tuple], seconds: float, evaluators: list[Evaluator], checked: set[str], config
) -> list[hourly.Result]:
    """One hour's materializations of both assets, the evaluators' checks on hourly_evaluations."""
    overall = {r["evaluator"]: r for r in rows if r["scope"] == "all"}
    by_evaluator: dict[str, list[dict]] = {}
    for r in rows:
        by_evaluator.setdefault(r["evaluator"], []).append(r)
    return [
        dg.MaterializeResult(
            asset_key="evaluation_flags",
            metadata={
                "flags": sum(r["failed"] for r in overall.values()),
                "evaluation_seconds": round(seconds, 3),
                "preview": dg.MetadataValue.md(markdown.table(["evaluator", "model", "request_id", "evidence"], flags)),
            },
        ),
        dg.MaterializeResult(
            asset_key="hourly_evaluations",
            metadata={
                **{f"{name}/fail_rate": r["fail_rate"] for name, r in overall.items() if r["fail_rate"] is not None},
                **{f"{name}/failed": r["failed"] for name, r in overall.items()},
                "by_scope": dg.MetadataValue.md(
                    markdown.table(
                        ["evaluator", "scope", "evaluated", "failed", "fail rate"],
                        [
                            (
                                r["evaluator"],
                                r["scope"],
                                r["evaluated"],
                                r["failed"],
                                "n/a" if r["fail_rate"] is None else f"{r['fail_rate']:.2%}",
                            )
                            for r in rows
                        ],
                    )
                ),
            },
            check_results=[
                judge_evaluator(e, by_evaluator.get(e.name, []), config) for e in evaluators if e.check in checked
            ],
        ),
    ]
