"""Each metric of an hour against the same hour of the week over the previous weeks, and the four
anomaly checks that read the verdicts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

import dagster as dg
import duckdb

from monitoring_pipeline.config import MonitoringConfig
from monitoring_pipeline.defs.baselines import sql
from monitoring_pipeline.defs.baselines.stats import rate_band, value_band
from monitoring_pipeline.lib import markdown
from monitoring_pipeline.lib.checks import Scope, check_result, fmt, judge
from monitoring_pipeline.lib.db import fetch_dicts, table_exists

TRAFFIC_ANOMALY = "traffic_anomaly"
ERROR_RATE_ANOMALY = "error_rate_anomaly"
LATENCY_P99_ANOMALY = "latency_p99_anomaly"
COST_ANOMALY = "cost_anomaly"
NO_HISTORY = "not enough history"


@dataclass(frozen=True)
class AnomalyCheck:
    name: str
    metric: str  # metric_anomalies.metric
    what: str
    unit: str
    description: str


ANOMALY_CHECKS = (
    AnomalyCheck(
        TRAFFIC_ANOMALY,
        "requests",
        "requests",
        "",
        "Requests outside the band of the same hour of the week (a drop as much as a flood).",
    ),
    AnomalyCheck(
        ERROR_RATE_ANOMALY,
        "error_rate",
        "error rate",
        "%",
        "Error rate significantly above the same hour of the week, and more than min_ratio x it.",
    ),
    AnomalyCheck(
        LATENCY_P99_ANOMALY,
        "latency_p99_ms",
        "p99 latency",
        "ms",
        "p99 latency above the band of the same hour of the week.",
    ),
    AnomalyCheck(
        COST_ANOMALY, "cost_usd", "cost", "USD", "The hour's cost above the band of the same hour of the week."
    ),
)


def baselines(conn: duckdb.DuckDBPyConnection, hours: list[datetime], config: MonitoringConfig) -> list[dict]:
    """Every (hour, scope, metric) of the hours with its expected value, band and verdict, in one query."""
    query = sql.baseline_rows_sql(with_evaluations=table_exists(conn, "hourly_evaluations"))
    rows = fetch_dicts(conn, query, {"hours": hours, "weeks": config.anomaly.weeks})
    for row in rows:
        if row["metric"] == "error_rate" or row["metric"].startswith("fail_rate:"):
            verdict = rate_band(row["events"], row["trials"], row["median"], row["history"], config.anomaly)
        else:
            verdict = value_band(
                row["value"],
                row["median"],
                row["mad"],
                row["history"],
                config.anomaly,
                volume=row["median_trials"] if row["metric"] != "requests" else None,
                count=row["metric"] == "requests",
                both_ways=row["metric"] == "requests",
            )
        if row["metric"] == "requests" and row["value"] is None:
            row["value"] = 0.0  # an hour that has no metrics row had no requests
            verdict = dataclasses.replace(verdict, anomalous=verdict.enough_history and (verdict.lower or 0) > 0)
        row.update(dataclasses.asdict(verdict))
    return rows


def write(conn: duckdb.DuckDBPyConnection, rows: list[dict]) -> None:
    """The hours' rows; the caller holds the transaction that first deleted the hours."""
    conn.execute(
        sql.INSERT_ANOMALIES,
        {
            **{
                key: [r[col] for r in rows]
                for key, col in (
                    ("hours", "hour"),
                    ("scopes", "scope"),
                    ("metrics", "metric"),
                    ("values", "value"),
                    ("expected", "expected"),
                    ("lower", "lower"),
                    ("upper", "upper"),
                    ("anomalous", "anomalous"),
                    ("history", "history"),
                )
            },
        },
    )


def when(hour: datetime) -> str:
    return f"{hour:%A %H:00}"


def evaluate(check: AnomalyCheck, rows: list[dict], hour: datetime, config: MonitoringConfig) -> dg.AssetCheckResult:
    """One anomaly check over the hour's rows of its metric, the hour as a whole first."""
    min_sample = config.min_sample.get(check.name, 1)
    mine = [r for r in rows if r["metric"] == check.metric]
    scopes = [_judge(check, r, min_sample) for r in mine]
    by_scope = {r["scope"]: r for r in mine}
    return check_result(
        check.name,
        "metric_anomalies",
        scopes,
        severity=dg.AssetCheckSeverity.WARN,
        what=check.what,
        unit=check.unit,
        min_sample=min_sample,
        description=_describe(check, scopes, by_scope, hour, config),
        metadata={
            # the breaches as check_result lists them, each with its own line for the alert
            "breaches": [{**s.breach(), "detail": _detail(check, by_scope[s.scope], hour)} for s in scopes if s.failed],
            "expected": _figure(by_scope.get("all"), "expected"),
            "history": _figure(by_scope.get("all"), "history"),
            "baseline": dg.MetadataValue.md(_table(check, mine, scopes)),
        },
    )


def _judge(check: AnomalyCheck, row: dict, min_sample: int) -> Scope:
    below = row["lower"] is not None and row["value"] is not None and row["value"] < row["lower"]
    if check.metric == "requests":  # the volume the hour is judged on: a drop to 0 still counts
        sample = round(max(row["value"] or 0, row["expected"] or 0))
    else:
        sample = row["trials"] or 0
    scope = judge(
        row["scope"],
        row["value"],
        row["lower"] if below else row["upper"],
        sample,
        min_sample=min_sample,
        breached=row["anomalous"],
    )
    return scope if row["enough_history"] else dataclasses.replace(scope, status=NO_HISTORY)


def _label(scope: str) -> str:
    return "all traffic" if scope == "all" else f"model {scope}"


def _line(check: AnomalyCheck, row: dict, hour: datetime) -> str:
    """'error rate 0.90% vs 0.20% expected for Wednesday 15:00 (4 weeks)'."""
    return (
        f"{check.what} {fmt(row['value'], check.unit)} vs {fmt(row['expected'], check.unit)} expected"
        f" for {when(hour)} ({row['history']} weeks)"
    )


def _detail(check: AnomalyCheck, row: dict, hour: datetime) -> str:
    below = row["lower"] is not None and (row["value"] or 0) < row["lower"]
    bound = row["lower"] if below else row["upper"]
    return f"{_line(check, row, hour)}, {'below' if below else 'above'} {fmt(bound, check.unit)}"


def _describe(
    check: AnomalyCheck, scopes: list[Scope], rows: dict[str, dict], hour: datetime, config: MonitoringConfig
) -> str:
    failed = sorted((s for s in scopes if s.failed), key=lambda s: (s.scope != "all", s.scope))
    parts = []
    for s in failed:
        parts.append(f"{_label(s.scope)}: {_detail(check, rows[s.scope], hour)}")
    overall = next((s for s in scopes if s.scope == "all"), None)
    if overall is not None and not overall.failed:
        row = rows["all"]
        if overall.status == NO_HISTORY:
            parts.append(
                f"all traffic: {NO_HISTORY} for {when(hour)} ({row['history']} of {config.anomaly.min_weeks} weeks needed)"
            )
        else:
            verdict = "within the band" if overall.status == "ok" else overall.status
            parts.append(f"all traffic: {_line(check, row, hour)}, {verdict}")
    if not failed:
        ok = sum(1 for s in scopes if s.scope != "all" and s.status == "ok")
        if ok:
            parts.append(f"{ok} model(s) ok")
    return "; ".join(parts) if parts else "no data this hour"


def _figure(row: dict | None, key: str) -> float | None:
    return None if row is None or row[key] is None else float(row[key])


def _table(check: AnomalyCheck, rows: list[dict], scopes: list[Scope]) -> str:
    def f(value):
        return "n/a" if value is None else fmt(value, check.unit)

    return markdown.table(
        ["scope", "value", "expected", "band", "weeks", "status"],
        [
            (r["scope"], f(r["value"]), f(r["expected"]), f"{f(r['lower'])} .. {f(r['upper'])}", r["history"], s.status)
            for r, s in zip(rows, scopes, strict=True)
        ],
    )


def check_specs(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(c.name, asset="metric_anomalies", description=c.description, partitions_def=partitions_def)
        for c in ANOMALY_CHECKS
    ]
