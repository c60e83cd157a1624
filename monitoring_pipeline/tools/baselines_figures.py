"""Seeded history for the baselines, and the figures the README reports: how often the anomaly
checks cry wolf over a month of healthy hours, and how many hours each kind of incident takes to
be caught.

History goes straight into hourly_metrics / hourly_model_metrics (a month of hours in a second,
no logs to read), with daily and weekly seasonality: quiet nights and weekends. Each hour is then
judged by the same code as the metric_anomalies asset; the SLO's short windows (the hour's last
5 and 30 minutes, which the asset counts from llm_requests) are taken as the hour's share.

    python -m monitoring_pipeline.tools.baselines_figures [--weeks 4] [--seed 7]
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from monitoring_pipeline.config import MonitoringConfig, load_config
from monitoring_pipeline.defs.baselines import anomalies, slo
from monitoring_pipeline.defs.metrics.assets import HOURLY_METRICS_DDL, HOURLY_MODEL_METRICS_DDL


@dataclass(frozen=True)
class ModelProfile:
    share: float  # of the hour's traffic
    p99_ms: float
    cost_per_request: float  # USD
    error_rate: float = 0.002
    slow_rate: float = 0.001  # calls over the latency SLO's threshold


# What the tests' log records cost: 100 input + 50 output tokens at the default config's prices.
MODELS = {
    "chat-large": ModelProfile(0.7, 3000.0, (100 * 2.50 + 50 * 10.00) / 1e6),
    "code-small": ModelProfile(0.3, 1200.0, (100 * 0.15 + 50 * 0.60) / 1e6),
}
PEAK_REQUESTS = 1000  # an hour at the weekday peak (14:00-15:00 UTC)


def expected_requests(hour: datetime, peak: int = PEAK_REQUESTS) -> float:
    """Quiet nights (a tenth of the peak at 03:00), a peak mid-afternoon, weekends at 40 %."""
    daily = 0.1 + 0.9 * (0.5 - 0.5 * math.cos(2 * math.pi * ((hour.hour - 3) % 24) / 24)) ** 1.5
    weekly = 0.4 if hour.weekday() >= 5 else 1.0
    return peak * daily * weekly


@dataclass
class Incident:
    """Multiplies a healthy hour's figures from `start` for `hours` hours."""

    start: datetime
    hours: int
    traffic: float = 1.0
    error_rate: float = 1.0
    p99: float = 1.0
    cost_per_request: float = 1.0
    slow_rate: float = 1.0
    models: tuple[str, ...] = ()  # () = every model

    def applies(self, hour: datetime, model: str) -> bool:
        return self.start <= hour < self.start + timedelta(hours=self.hours) and (
            not self.models or model in self.models
        )


@dataclass
class Seeder:
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    peak: int = PEAK_REQUESTS

    def poisson(self, lam: float) -> int:
        if lam <= 0:
            return 0
        if lam > 50:
            return max(0, round(self.rng.gauss(lam, math.sqrt(lam))))
        limit, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= self.rng.random()
            if p <= limit:
                return k
            k += 1

    def hour_rows(self, hour: datetime, incidents: list[Incident]) -> list[tuple]:
        """(hour, model, requests, errors, p99, cost, slow) per model for one hour."""
        rows = []
        for model, profile in MODELS.items():
            hit = [i for i in incidents if i.applies(hour, model)]
            factor = {
                k: math.prod(getattr(i, k) for i in hit)
                for k in ("traffic", "error_rate", "p99", "cost_per_request", "slow_rate")
            }
            mean = expected_requests(hour, self.peak) * profile.share * factor["traffic"]
            requests = self.poisson(mean * max(0.0, self.rng.gauss(1, 0.05)))
            errors = min(requests, self.poisson(requests * profile.error_rate * factor["error_rate"]))
            slow = min(requests, self.poisson(requests * profile.slow_rate * factor["slow_rate"]))
            # a p99 over few calls is noisier: its spread grows as the hour gets quieter
            noise = 0.05 + 0.5 / math.sqrt(max(requests, 1))
            p99 = profile.p99_ms * factor["p99"] * max(0.3, self.rng.gauss(1, noise)) if requests else None
            cost = requests * profile.cost_per_request * factor["cost_per_request"] * self.rng.gauss(1, 0.03)
            rows.append((hour, model, requests, errors, p99, max(cost, 0.0), slow))
        return rows

    def seed(
        self, conn: duckdb.DuckDBPyConnection, start: datetime, end: datetime, incidents: Sequence[Incident] = ()
    ) -> None:
        """hourly_metrics and hourly_model_metrics for every hour in [start, end)."""
        conn.execute(HOURLY_METRICS_DDL)
        conn.execute(HOURLY_MODEL_METRICS_DDL)
        rows: list[tuple] = []
        hour = start
        while hour < end:
            rows += self.hour_rows(hour, list(incidents))
            hour += timedelta(hours=1)
        cols = ["hour", "model", "requests", "errors", "p99", "cost", "slow"]
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE _seed AS SELECT " + ", ".join(f"unnest(${c}) AS {c}" for c in cols),
            {c: [r[i] for r in rows] for i, c in enumerate(cols)},
        )
        # The columns issue 2 pinned as NOT NULL get plausible figures; the rest stay NULL, as in
        # an import of another system's history.
        common = """sum(requests) AS requests, sum(errors) AS errors, sum(errors) / nullif(sum(requests), 0) AS error_rate,
                    {p99} AS latency_p99_ms, sum(requests) * 100 AS input_tokens, sum(requests) * 50 AS output_tokens,
                    sum(requests) * 150 AS total_tokens, sum(cost) AS cost_usd, 0 AS feedback_count,
                    0 AS safety_violations, sum(slow) AS slow_requests"""
        conn.execute(
            "INSERT INTO hourly_model_metrics BY NAME SELECT hour, model, "
            + common.format(p99="max(p99)")
            + " FROM _seed GROUP BY hour, model"
        )
        # the mixed traffic's p99 sits just under the slowest model's
        conn.execute(
            "INSERT INTO hourly_metrics BY NAME SELECT hour, "
            + common.format(p99="max(p99) * 0.97")
            + " FROM _seed GROUP BY hour"
        )
        conn.execute("DROP TABLE _seed")


def proportional_short_windows(conn, hours, minutes, slow_ms) -> slo.Windows:
    """An hour's last m minutes as m/60 of the hour (history has no request rows to count)."""
    counts = {}
    for hour in hours:
        row = conn.execute(
            "SELECT requests, errors, coalesce(slow_requests, 0) FROM hourly_metrics WHERE hour = $hour", {"hour": hour}
        ).fetchone() or (0, 0, 0)
        requests, errors, slow = row
        counts[hour] = {
            m: slo.Counts(
                round(requests * m / 60), round(errors * m / 60), round(slow * m / 60), round(requests * m / 60)
            )
            for m in minutes
        }
    return counts


def anomaly_failures(conn: duckdb.DuckDBPyConnection, hours: list[datetime], config: MonitoringConfig) -> dict:
    """hour -> the anomaly checks that fail it, judged as the asset judges them (one query)."""
    by_hour: dict[datetime, list[dict]] = {h: [] for h in hours}
    for row in anomalies.baselines(conn, hours, config):
        by_hour[row["hour"]].append(row)
    return {
        hour: {
            str(r.check_name): r.severity.value
            for r in (anomalies.evaluate(c, rows, hour, config) for c in anomalies.ANOMALY_CHECKS)
            if not r.passed
        }
        for hour, rows in by_hour.items()
    }


def slo_failures(conn: duckdb.DuckDBPyConnection, hour: datetime, config: MonitoringConfig) -> dict[str, str]:
    counts = slo.window_counts(conn, [hour], config, short=proportional_short_windows)[hour]
    results = [slo.evaluate(s, counts, config) for s in slo.slos(config)]
    return {str(r.check_name): r.severity.value for r in results if not r.passed}


def hours_from(first: datetime, count: int) -> list[datetime]:
    return [first + timedelta(hours=k) for k in range(count)]


def false_alarms(config: MonitoringConfig, weeks: int = 4, seed: int = 7) -> dict:
    """Anomaly-check failures over `weeks` weeks of healthy hours, after config.anomaly.weeks
    weeks of history: each failing (check, hour) is one WARN."""
    with _scratch() as conn:
        start = datetime(2026, 1, 5)  # a Monday
        first = start + timedelta(weeks=config.anomaly.weeks)
        Seeder(random.Random(seed)).seed(conn, start, first + timedelta(weeks=weeks))
        failures = anomaly_failures(conn, hours_from(first, weeks * 168), config)
    fired: dict[str, int] = {}
    for checks in failures.values():
        for check in checks:
            fired[check] = fired.get(check, 0) + 1
    return {"hours": len(failures), "weeks": weeks, "fired": fired, "per_week": sum(fired.values()) / weeks}


INCIDENTS: dict[str, tuple[str, Callable[[datetime], Incident]]] = {
    "error rate x5 (1 % errors)": (anomalies.ERROR_RATE_ANOMALY, lambda t: Incident(t, 48, error_rate=5)),
    "one model's error rate x10": (
        anomalies.ERROR_RATE_ANOMALY,
        lambda t: Incident(t, 48, error_rate=10, models=("code-small",)),
    ),
    "p99 latency x1.6": (anomalies.LATENCY_P99_ANOMALY, lambda t: Incident(t, 48, p99=1.6)),
    "cost per request x2": (anomalies.COST_ANOMALY, lambda t: Incident(t, 48, cost_per_request=2)),
    "traffic drops to 40 %": (anomalies.TRAFFIC_ANOMALY, lambda t: Incident(t, 48, traffic=0.4)),
    "traffic x2.5 (flood)": (anomalies.TRAFFIC_ANOMALY, lambda t: Incident(t, 48, traffic=2.5)),
    "outage: 20 % errors (fast burn)": (slo.SLO_AVAILABILITY_BURN, lambda t: Incident(t, 48, error_rate=100)),
    "2 % errors (slow burn, 2x budget)": (slo.SLO_AVAILABILITY_BURN, lambda t: Incident(t, 96, error_rate=10)),
    "5 % of calls over 5 s (slow burn)": (slo.SLO_LATENCY_BURN, lambda t: Incident(t, 96, slow_rate=50)),
}


def time_to_catch(config: MonitoringConfig, starts: list[datetime], seed: int = 7) -> dict[str, dict]:
    """For each incident kind, the hours from its start to the first failure of its check (1 =
    caught by the run of the hour it started in), at each start time, and the severity it got."""
    out: dict[str, dict] = {}
    for name, (check, make) in INCIDENTS.items():
        caught: list[int | None] = []
        severity = set()
        for start in starts:
            incident = make(start)
            with _scratch() as conn:
                history_start = start - timedelta(weeks=config.anomaly.weeks)
                Seeder(random.Random(seed)).seed(
                    conn, history_start, start + timedelta(hours=incident.hours), [incident]
                )
                hours = hours_from(start, incident.hours)
                if check.startswith("slo_"):
                    failed = {h: slo_failures(conn, h, config) for h in hours}
                else:
                    failed = anomaly_failures(conn, hours, config)
                hit = next((k + 1 for k, h in enumerate(hours) if check in failed[h]), None)
                if hit is not None:
                    severity.add(failed[hours[hit - 1]][check])
                caught.append(hit)
        out[name] = {"check": check, "hours": caught, "severity": sorted(severity)}
    return out


class _scratch:
    """A throwaway DuckDB file."""

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        self._dir = tempfile.TemporaryDirectory()
        self._conn = duckdb.connect(str(Path(self._dir.name) / "seed.duckdb"))
        return self._conn

    def __exit__(self, *exc) -> None:
        self._conn.close()
        self._dir.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=4, help="weeks of healthy hours judged (default 4)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    config = load_config()
    fa = false_alarms(config, weeks=args.weeks, seed=args.seed)
    print(f"healthy hours judged: {fa['hours']}; failures: {fa['fired'] or 'none'}; per week: {fa['per_week']:.2f}")
    monday = datetime(2026, 2, 2)
    starts = [
        monday + timedelta(days=2, hours=15),
        monday + timedelta(days=2, hours=3),
        monday + timedelta(days=5, hours=14),
    ]
    print("incident caught after N hourly runs (Wed 15:00 peak, Wed 03:00 night, Sat 14:00 weekend):")
    for name, r in time_to_catch(config, starts, seed=args.seed).items():
        print(f"  {name:36s} {r['check']:22s} {r['hours']} {r['severity']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
