"""The SQL of metric_anomalies: the table, each metric's value and history for an hour, the SLO
windows' counts."""

METRIC_ANOMALIES_DDL = """
CREATE TABLE IF NOT EXISTS metric_anomalies (
    hour TIMESTAMP NOT NULL,
    scope VARCHAR NOT NULL,             -- 'all' or a model
    metric VARCHAR NOT NULL,            -- requests | error_rate | latency_p99_ms | cost_usd | fail_rate:<evaluator>
    value DOUBLE,                       -- the hour's figure (NULL: no evidence this hour)
    expected DOUBLE,                    -- median of the same hour of the week, previous weeks
    lower DOUBLE,                       -- the band: below lower (requests only) or above upper is anomalous
    upper DOUBLE,
    anomalous BOOLEAN NOT NULL,
    history INTEGER NOT NULL            -- hours of history used (the same hour, one per week)
)"""

# One row per (judged hour, scope, metric): the hour's figure, and median/MAD over its history
# hours (the same hour of the week, k = 1..$weeks weeks back), straight from hourly_metrics /
# hourly_model_metrics as they stand (backfilled or imported hours count). The asset judges one
# hour; tools judge a month in one query. A model missing from an hour that was computed had no
# requests in it: 0, not unknown.
_ROWS = """
WITH pairs AS MATERIALIZED (
    SELECT j.hour AS judged, j.hour - to_weeks(k::INTEGER) AS hour, k
    FROM (SELECT unnest($hours::TIMESTAMP[]) AS hour) j, range(0, $weeks + 1) t(k)
),
present AS MATERIALIZED (SELECT hour FROM hourly_metrics WHERE hour IN (SELECT hour FROM pairs)),
models AS (SELECT DISTINCT model FROM hourly_model_metrics WHERE hour IN (SELECT hour FROM present)),
figures AS (
    SELECT hour, 'all' AS scope, requests, errors, latency_p99_ms, cost_usd
    FROM hourly_metrics WHERE hour IN (SELECT hour FROM present)
    UNION ALL
    SELECT p.hour, m.model, coalesce(mm.requests, 0), coalesce(mm.errors, 0), mm.latency_p99_ms, mm.cost_usd
    FROM present p CROSS JOIN models m
    LEFT JOIN hourly_model_metrics mm ON mm.hour = p.hour AND mm.model = m.model
),
long AS (
    SELECT hour, scope,
           unnest(['requests', 'error_rate', 'latency_p99_ms', 'cost_usd']) AS metric,
           unnest([requests::DOUBLE, errors / nullif(requests, 0), latency_p99_ms, cost_usd]) AS value,
           unnest([NULL, errors, NULL, NULL]::BIGINT[]) AS events,   -- a rate's events and trials
           unnest([NULL, requests, requests, requests]::BIGINT[]) AS trials
    FROM figures
    {evaluations}
)
SELECT p.judged AS hour, l.scope, l.metric,
       any_value(l.value) FILTER (p.k = 0) AS value,
       any_value(l.events) FILTER (p.k = 0) AS events,
       any_value(l.trials) FILTER (p.k = 0) AS trials,
       median(l.value) FILTER (p.k > 0) AS median,
       median(l.trials) FILTER (p.k > 0) AS median_trials,
       mad(l.value) FILTER (p.k > 0) AS mad,
       count(l.value) FILTER (p.k > 0) AS history
FROM pairs p JOIN long l USING (hour)
GROUP BY p.judged, l.scope, l.metric
ORDER BY p.judged, l.scope <> 'all', l.scope, l.metric
"""

# hourly_evaluations (hour, scope, evaluator, evaluated, failed, fail_rate) when it exists.
_EVALUATIONS = """
    UNION ALL SELECT hour, scope, 'fail_rate:' || evaluator, failed / nullif(evaluated, 0), failed, evaluated
    FROM hourly_evaluations WHERE hour IN (SELECT hour FROM pairs)
"""


def baseline_rows_sql(with_evaluations: bool) -> str:
    return _ROWS.format(evaluations=_EVALUATIONS if with_evaluations else "")


INSERT_ANOMALIES = """
INSERT INTO metric_anomalies
SELECT unnest($hours::TIMESTAMP[]), unnest($scopes::VARCHAR[]), unnest($metrics::VARCHAR[]), unnest($values::DOUBLE[]),
       unnest($expected::DOUBLE[]), unnest($lower::DOUBLE[]), unnest($upper::DOUBLE[]),
       unnest($anomalous::BOOLEAN[]), unnest($history::INTEGER[])
"""


def short_windows_sql(count: int) -> str:
    """Per hour of $start..$end: requests, errors and slow calls in the hour's last $m<i> minutes,
    for each window i, in one pass over the hours' rows of llm_requests (60 minutes: all of them)."""
    within = '($m{i} >= 60 OR r."timestamp" >= r.hour + INTERVAL 1 HOUR - to_minutes($m{i}))'
    cols = ",\n       ".join(
        f"""count(*) FILTER ({within.format(i=i)}),
       count(*) FILTER ({within.format(i=i)} AND status = 'error'),
       count(*) FILTER ({within.format(i=i)} AND latency_ms > $slow_ms),
       count(*) FILTER ({within.format(i=i)}),
       1"""
        for i in range(count)
    )
    return f"SELECT r.hour, {cols} FROM llm_requests r WHERE r.hour >= $start AND r.hour < $end GROUP BY r.hour"


def _within_hours(i: int) -> str:
    return f"m.hour > h.hour - to_hours($h{i})"


def long_windows_sql(count: int) -> str:
    """Per hour of $hours: requests, errors and slow calls over the $h<i> hours ending with it,
    from hourly_metrics; slow calls only from hours that counted them (history from before the
    column is unknown, not fast), so each window also returns the requests its slow count covers,
    and how many of its hours hourly_metrics holds."""
    cols = ",\n       ".join(
        f"""coalesce(sum(m.requests) FILTER ({_within_hours(i)}), 0),
       coalesce(sum(m.errors) FILTER ({_within_hours(i)}), 0),
       coalesce(sum(m.slow_requests) FILTER ({_within_hours(i)}), 0),
       coalesce(sum(m.requests) FILTER ({_within_hours(i)} AND m.slow_requests IS NOT NULL), 0),
       count(m.hour) FILTER ({_within_hours(i)})"""
        for i in range(count)
    )
    return (
        f"SELECT h.hour, {cols} FROM (SELECT unnest($hours) AS hour) h"
        " LEFT JOIN hourly_metrics m ON m.hour > h.hour - to_hours($longest) AND m.hour <= h.hour GROUP BY h.hour"
    )
