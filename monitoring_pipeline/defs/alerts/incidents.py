"""Incidents: one per (check, asset, scope), firing or resolved, kept in the notification log.

A run's check evaluations move incidents: a failing scope opens one (or keeps it firing), a scope
that passes again resolves it. Only changes worth telling become notices: the opening, a reminder
once it has fired for `repeat_interval_hours` since it was last told, and the resolution.
Evaluations of an hour older than the incident's latest are history (a backfill) and move nothing;
a resolved incident does not reopen from the hour that resolved it or an older one.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from monitoring_pipeline.config import MonitoringConfig, Silence
from monitoring_pipeline.defs.alerts.runs import Evaluation

OPEN, REPEAT, RESOLVED = "open", "repeat", "resolved"


@dataclass(frozen=True)
class Notice:
    kind: str  # open | repeat | resolved
    check: str
    asset: str
    scope: str
    severity: str
    partition: str | None
    value: float | None
    threshold: float | None
    sample_size: int | None
    silenced_by: str | None = None  # the silence that muted it
    window: str | None = None  # what an unpartitioned check judged (e.g. human_bad_rate's trailing hours)
    detail: str | None = None  # the breach's own wording, where its check gives one (baselines)

    @property
    def critical(self) -> bool:
        return self.severity == "ERROR"


def active_silences(conn: duckdb.DuckDBPyConnection, config: MonitoringConfig, now: datetime) -> list[Silence]:
    """Silences from the configuration and from `monitoring-pipeline silence`, still in force."""
    rows = conn.execute(
        "SELECT check_name, model, until, coalesce(reason, '') FROM silences WHERE until > $now", {"now": now}
    ).fetchall()
    stored = [Silence(check=r[0], model=r[1], until=r[2], reason=r[3]) for r in rows]
    return [*config.alerts.silences, *stored]


def _silence_for(silences: list[Silence], check: str, scope: str, now: datetime) -> str | None:
    for s in silences:
        if s.matches(check, scope, now):
            return f"silenced ({s.check or 'any check'}, {s.model or 'any scope'}) until {s.until:%Y-%m-%d %H:%M}" + (
                f": {s.reason}" if s.reason else ""
            )
    return None


def incident_id(check: str, asset: str, scope: str) -> str:
    return f"{check}|{asset}|{scope}"


def failing_scopes(evaluation: Evaluation) -> dict[str, dict]:
    """scope -> {value, threshold, sample_size} for each scope the evaluation found failing."""
    if evaluation.passed:
        return {}
    md = evaluation.metadata
    breaches = md.get("breaches")
    if breaches:
        return {b["scope"]: b for b in breaches}
    return {"all": {"value": md.get("value"), "threshold": md.get("threshold"), "sample_size": md.get("sample_size")}}


def _window(evaluation: Evaluation) -> str | None:
    window = evaluation.metadata.get("window")
    return str(window) if window else None


def apply(
    conn: duckdb.DuckDBPyConnection,
    evaluation: Evaluation,
    config: MonitoringConfig,
    now: datetime,
    silences: list[Silence],
    held: str | None = None,
) -> list[Notice]:
    """Move the incidents of one check evaluation; return what to tell (muted notices included).
    `held` says why nothing of this evaluation is to be posted (an old hour, a backfill): its
    incidents move, but nobody is told, as under a silence."""
    repeat = timedelta(hours=config.alerts.repeat_interval_hours)
    failing = failing_scopes(evaluation)
    partition = evaluation.partition or ""
    notices: list[Notice] = []
    known_by_scope = {
        row[0]: row
        for row in conn.execute(
            "SELECT scope, last_partition, last_notified_at, state FROM incidents"
            " WHERE check_name = $check AND asset = $asset",
            {"check": evaluation.check, "asset": evaluation.asset},
        ).fetchall()
    }
    firing = {scope: row[:3] for scope, row in known_by_scope.items() if row[3] == "firing"}

    for scope, figures in failing.items():
        known = firing.get(scope)
        if known is not None and (known[1] or "") > partition:
            continue  # an older hour, re-run: the incident has moved on
        gone = known_by_scope.get(scope)
        if partition and gone is not None and gone[3] == "resolved" and partition <= (gone[1] or ""):
            continue  # the hour that resolved it, or an older one, re-run: it stays resolved
        silenced_by = held or _silence_for(silences, evaluation.check, scope, now)
        if known is None:
            kind = OPEN
        elif known[2] is None:
            kind = OPEN  # it fired while muted; nobody was told yet
        elif now - known[2] >= repeat:
            kind = REPEAT
        else:
            kind = None
        notified = kind is not None and silenced_by is None
        conn.execute(
            """INSERT INTO incidents VALUES ($id, $check, $asset, $scope, $severity, 'firing', $now, $partition,
                   $partition, $value, $threshold, $sample, CASE WHEN $notified THEN $now END, NULL)
               ON CONFLICT (incident_id) DO UPDATE SET
                   state = 'firing', severity = $severity, value = $value, threshold = $threshold,
                   sample_size = $sample, last_partition = $partition, resolved_at = NULL,
                   opened_at = CASE WHEN incidents.state = 'resolved' THEN $now ELSE incidents.opened_at END,
                   first_partition = CASE WHEN incidents.state = 'resolved' THEN $partition
                                          ELSE incidents.first_partition END,
                   last_notified_at = CASE WHEN $notified THEN $now
                                           WHEN incidents.state = 'resolved' THEN NULL
                                           ELSE incidents.last_notified_at END""",
            {
                "id": incident_id(evaluation.check, evaluation.asset, scope),
                "check": evaluation.check,
                "asset": evaluation.asset,
                "scope": scope,
                "severity": evaluation.severity,
                "now": now,
                "partition": partition,
                "value": figures.get("value"),
                "threshold": figures.get("threshold"),
                "sample": figures.get("sample_size"),
                "notified": notified,
            },
        )
        if kind is not None:
            notices.append(
                Notice(
                    kind,
                    evaluation.check,
                    evaluation.asset,
                    scope,
                    evaluation.severity,
                    evaluation.partition,
                    figures.get("value"),
                    figures.get("threshold"),
                    figures.get("sample_size"),
                    silenced_by,
                    _window(evaluation),
                    figures.get("detail"),
                )
            )

    for scope, (_, last_partition, last_notified_at) in firing.items():
        if scope in failing or (last_partition or "") > partition:
            continue
        conn.execute(
            "UPDATE incidents SET state = 'resolved', resolved_at = $now, last_partition = $partition"
            " WHERE incident_id = $id",
            {"id": incident_id(evaluation.check, evaluation.asset, scope), "now": now, "partition": partition},
        )
        md = evaluation.metadata
        silenced_by = held or (None if last_notified_at is not None else "never announced (muted while it fired)")
        notices.append(
            Notice(
                RESOLVED,
                evaluation.check,
                evaluation.asset,
                scope,
                evaluation.severity,
                evaluation.partition,
                md.get("value") if scope == "all" else None,
                md.get("threshold"),
                md.get("sample_size") if scope == "all" else None,
                silenced_by,
                _window(evaluation),
            )
        )
    return notices


def open_incidents(conn: duckdb.DuckDBPyConnection) -> list[tuple]:
    return conn.execute(
        "SELECT check_name, asset, scope, severity, opened_at, first_partition, last_partition, value, threshold,"
        " sample_size, last_notified_at FROM incidents WHERE state = 'firing' ORDER BY severity, opened_at, incident_id"
    ).fetchall()
