"""SLO burn rates: the share of bad calls over windows ending at the hour, divided by the error
budget (1 - target), judged by multi-window rules: a page rule (severity ERROR) or a ticket rule
(WARN) fires when both its windows burn at least its rate.

Windows of up to 60 minutes are the hour's last minutes, counted from llm_requests; longer ones
are whole hours from hourly_metrics (so backfilled history counts)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import dagster as dg
import duckdb

from monitoring_pipeline.config import BurnWindow, MonitoringConfig
from monitoring_pipeline.defs.baselines import sql
from monitoring_pipeline.lib.checks import check_result, judge
from monitoring_pipeline.lib.db import table_exists

SLO_AVAILABILITY_BURN = "slo_availability_burn"
SLO_LATENCY_BURN = "slo_latency_burn"


@dataclass(frozen=True)
class Counts:
    requests: int
    errors: int
    slow: int
    timed: int  # requests whose latency was counted against the threshold (slow is known)
    hours: int = 1  # hours of the window that hourly_metrics holds (short windows: the hour itself)


# hour -> minutes -> counts; the asset counts short windows from llm_requests, tools may pass their own
Windows = dict[datetime, dict[int, Counts]]
ShortWindows = Callable[[duckdb.DuckDBPyConnection, list[datetime], list[int], float], Windows]


def label(minutes: int) -> str:
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def short_windows(
    conn: duckdb.DuckDBPyConnection, hours: list[datetime], minutes: list[int], slow_ms: float
) -> Windows:
    counts = {hour: {m: Counts(0, 0, 0, 0, 1) for m in minutes} for hour in hours}
    if not minutes or not hours or not table_exists(conn, "llm_requests"):
        return counts
    params = {"start": min(hours), "end": max(hours) + timedelta(hours=1), "slow_ms": slow_ms}
    params.update({f"m{i}": m for i, m in enumerate(minutes)})
    for hour, *row in conn.execute(sql.short_windows_sql(len(minutes)), params).fetchall():
        if hour in counts:
            counts[hour] = {m: Counts(*row[5 * i : 5 * i + 5]) for i, m in enumerate(minutes)}
    return counts


def long_windows(conn: duckdb.DuckDBPyConnection, hours: list[datetime], minutes: list[int]) -> Windows:
    if not minutes or not hours:
        return {hour: {} for hour in hours}
    params: dict = {"hours": hours, "longest": max(minutes) // 60, **{f"h{i}": m // 60 for i, m in enumerate(minutes)}}
    rows = conn.execute(sql.long_windows_sql(len(minutes)), params).fetchall()
    return {hour: {m: Counts(*row[5 * i : 5 * i + 5]) for i, m in enumerate(minutes)} for hour, *row in rows}


def window_counts(
    conn: duckdb.DuckDBPyConnection,
    hours: list[datetime],
    config: MonitoringConfig,
    short: ShortWindows = short_windows,
) -> Windows:
    """Per hour, counts for every window the rules name, and for the SLO period: two statements
    for all the hours (a range run's), not two per hour."""
    slos = config.slos
    wanted = {m for rule in [*slos.page, *slos.ticket] for m in (rule.long_minutes, rule.short_minutes)}
    wanted.add(slos.period_days * 1440)
    counts = short(conn, hours, sorted(m for m in wanted if m <= 60), slos.latency.threshold_ms)
    for hour, windows in long_windows(conn, hours, sorted(m for m in wanted if m > 60)).items():
        counts[hour].update(windows)
    return counts


@dataclass(frozen=True)
class Slo:
    name: str  # the check
    what: str
    target: float

    def bad_share(self, c: Counts) -> float | None:
        if self.name == SLO_AVAILABILITY_BURN:
            return c.errors / c.requests if c.requests else None
        return c.slow / c.timed if c.timed else None

    def volume(self, c: Counts) -> int:
        return c.requests if self.name == SLO_AVAILABILITY_BURN else c.timed

    def burn(self, c: Counts) -> float | None:
        share = self.bad_share(c)
        return None if share is None else share / (1 - self.target)


def slos(config: MonitoringConfig) -> list[Slo]:
    return [
        Slo(SLO_AVAILABILITY_BURN, "availability", config.slos.availability.target),
        Slo(
            SLO_LATENCY_BURN,
            f"latency (calls under {config.slos.latency.threshold_ms:,.0f} ms)",
            config.slos.latency.target,
        ),
    ]


def covered(rule: BurnWindow, counts: dict[int, Counts]) -> bool:
    """A rule is judged once history covers its long window: 7 hours of a new deployment are not
    3 days, and one bad hour among them would read as a 3-day burn (a fast burn still pages)."""
    return counts[rule.long_minutes].hours >= max(1, rule.long_minutes // 60)


def _fires(slo: Slo, rule: BurnWindow, counts: dict[int, Counts]) -> bool:
    if not covered(rule, counts):
        return False
    long, short = slo.burn(counts[rule.long_minutes]), slo.burn(counts[rule.short_minutes])
    return long is not None and short is not None and long >= rule.burn_rate and short >= rule.burn_rate


def evaluate(slo: Slo, counts: dict[int, Counts], config: MonitoringConfig) -> dg.AssetCheckResult:
    """ERROR when a page rule fires, else WARN when a ticket rule fires, else a pass."""
    page = next((r for r in config.slos.page if _fires(slo, r, counts)), None)
    ticket = None if page else next((r for r in config.slos.ticket if _fires(slo, r, counts)), None)
    rule = page or ticket or next(iter([*config.slos.page, *config.slos.ticket]), None)
    long = counts[rule.long_minutes] if rule else None
    min_sample = config.min_sample.get(slo.name, 1)
    scope = judge(
        "all",
        slo.burn(long) if long else None,
        rule.burn_rate if rule else None,
        slo.volume(long) if long else 0,
        min_sample=min_sample,
        breached=bool(page or ticket),
    )
    period = counts[config.slos.period_days * 1440]
    share = slo.bad_share(period)
    budget_left = None if share is None else 1 - share / (1 - slo.target)
    burns = {f"burn_rate_{label(m)}": slo.burn(c) for m, c in sorted(counts.items())}
    fired = page or ticket
    detail = (
        f"{slo.what}: {label(fired.long_minutes)} burn {slo.burn(counts[fired.long_minutes]) or 0:.1f}x,"
        f" {label(fired.short_minutes)} {slo.burn(counts[fired.short_minutes]) or 0:.1f}x"
        f" ({_rule(fired, 'page' if page else 'ticket')})"
        if fired
        else ""
    )
    return check_result(
        slo.name,
        "metric_anomalies",
        [scope],
        severity=dg.AssetCheckSeverity.ERROR if page and scope.failed else dg.AssetCheckSeverity.WARN,
        what=f"{slo.what} burn rate",
        min_sample=min_sample,
        description=_describe(slo, scope.failed, page, ticket, burns, budget_left, config)
        + "".join(
            f"; {_rule(r, 'rule')} not judged: {counts[r.long_minutes].hours} of {r.long_minutes // 60} hours of history"
            for r in [*config.slos.page, *config.slos.ticket]
            if not covered(r, counts)
        ),
        metadata={
            "breaches": [{**scope.breach(), "detail": detail}] if scope.failed else [],
            **{k: v for k, v in burns.items() if v is not None},
            "budget_left": budget_left,
            "rule": dg.MetadataValue.text(
                _rule(page, "page") if page else _rule(ticket, "ticket") if ticket else "none"
            ),
        },
    )


def _rule(rule: BurnWindow | None, kind: str) -> str:
    if rule is None:
        return "none"
    return f"{kind}: {label(rule.long_minutes)} and {label(rule.short_minutes)} >= {rule.burn_rate:g}x"


def _describe(
    slo: Slo,
    failed: bool,
    page: BurnWindow | None,
    ticket: BurnWindow | None,
    burns: dict[str, float | None],
    budget_left: float | None,
    config: MonitoringConfig,
) -> str:
    shown = ", ".join(f"{k.removeprefix('burn_rate_')} {'n/a' if v is None else f'{v:.1f}x'}" for k, v in burns.items())
    left = "n/a" if budget_left is None else f"{budget_left:.0%}"
    budget = f"{left} of the {config.slos.period_days}-day error budget left (target {slo.target:.2%})"
    if failed and (page or ticket):
        verdict = f"{'page' if page else 'ticket'}: {_rule(page or ticket, 'burning')}"
    elif page or ticket:
        verdict = "would fire, too little traffic to judge"
    else:
        verdict = "burn rates below every rule"
    return f"{slo.what}: {verdict}; burn rates {shown}; {budget}"
