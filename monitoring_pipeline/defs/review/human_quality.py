"""review_verdicts -> human_quality: the reviewers' bad rate per hour, overall, by model and by
category, and the human_bad_rate check over a trailing window.

Verdicts arrive hours or days after their hour, for any hour, so the table is recomputed whole
(it holds a few rows per reviewed hour) each time verdicts change.
"""

import dagster as dg

from monitoring_pipeline.lib import markdown
from monitoring_pipeline.lib.checks import check_result, judge
from monitoring_pipeline.lib.db import one, table_exists, transaction
from monitoring_pipeline.resources import DuckDBWarehouse, MonitoringSettings

HUMAN_BAD_RATE = "human_bad_rate"
Z95 = 1.959964

HUMAN_QUALITY_DDL = """
CREATE TABLE IF NOT EXISTS human_quality (
    hour TIMESTAMP NOT NULL,            -- the reviewed requests' hour
    dimension VARCHAR NOT NULL,         -- all | model | category
    value VARCHAR NOT NULL,             -- 'all', the model, or the category of bad verdicts
    reviewed BIGINT NOT NULL,           -- verdicts in scope (for category: all of the hour)
    bad BIGINT NOT NULL,
    bad_rate DOUBLE NOT NULL,
    ci_low DOUBLE NOT NULL,             -- Wilson score interval, 95 %
    ci_high DOUBLE NOT NULL
)"""

WILSON = [
    """CREATE OR REPLACE TEMP MACRO wilson_low(b, n, z) AS
       ((b / n + z * z / (2 * n)) - z * sqrt(b / n * (1 - b / n) / n + z * z / (4 * n * n))) / (1 + z * z / n)""",
    """CREATE OR REPLACE TEMP MACRO wilson_high(b, n, z) AS
       ((b / n + z * z / (2 * n)) + z * sqrt(b / n * (1 - b / n) / n + z * z / (4 * n * n))) / (1 + z * z / n)""",
]

REBUILD = """
INSERT INTO human_quality
WITH v AS (SELECT hour, model, verdict = 'bad' AS is_bad, coalesce(category, 'uncategorized') AS category
           FROM review_verdicts),
counts AS (
    SELECT hour, 'all' AS dimension, 'all' AS value, count(*) AS reviewed, count(*) FILTER (is_bad) AS bad
    FROM v GROUP BY hour
    UNION ALL
    SELECT hour, 'model', model, count(*), count(*) FILTER (is_bad) FROM v GROUP BY hour, model
    UNION ALL
    SELECT b.hour, 'category', b.category, any_value(t.reviewed), count(*)
    FROM v b JOIN (SELECT hour, count(*) AS reviewed FROM v GROUP BY hour) t USING (hour)
    WHERE b.is_bad GROUP BY b.hour, b.category
)
SELECT hour, dimension, value, reviewed, bad, bad / reviewed,
       wilson_low(bad::DOUBLE, reviewed, $z), wilson_high(bad::DOUBLE, reviewed, $z)
FROM counts ORDER BY hour, dimension, value
"""

# The window ends at the newest reviewed hour: verdicts lag, so "now" would judge an empty window.
WINDOW = """
WITH bounds AS (SELECT max(hour) AS last_hour FROM human_quality WHERE dimension = 'all')
SELECT value, sum(reviewed) AS reviewed, sum(bad) AS bad,
       any_value(last_hour) - to_hours($window_hours - 1) AS first_hour, any_value(last_hour) AS last_hour
FROM human_quality, bounds
WHERE dimension IN ('all', 'model') AND hour > last_hour - to_hours($window_hours)
GROUP BY dimension, value ORDER BY dimension = 'model', value
"""


@dg.asset(
    deps=["review_verdicts"],
    pool="duckdb",
    group_name="human_review",
    kinds={"duckdb"},
    check_specs=[
        dg.AssetCheckSpec(
            HUMAN_BAD_RATE,
            asset="human_quality",
            description="Reviewers' bad rate over the trailing window above the threshold.",
        )
    ],
)
def human_quality(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse, settings: MonitoringSettings):
    """Reviewed count and bad rate (Wilson 95 % CI) per hour, overall, by model and by category."""
    rule = settings.load().review.human_bad_rate
    with warehouse.get_connection() as conn:
        conn.execute(HUMAN_QUALITY_DDL)
        for sql in WILSON:
            conn.execute(sql)
        with transaction(conn):
            conn.execute("DELETE FROM human_quality")
            if table_exists(conn, "review_verdicts"):
                conn.execute(REBUILD, {"z": Z95})
        hours = conn.execute(
            "SELECT strftime(hour, '%Y-%m-%d %H:00'), reviewed, bad, bad_rate, ci_low, ci_high FROM human_quality "
            "WHERE dimension = 'all' ORDER BY hour DESC LIMIT 24"
        ).fetchall()
        window = conn.execute(WINDOW, {"window_hours": rule.window_hours}).fetchall()
        ci = (
            one(
                conn,
                "SELECT wilson_low($b::DOUBLE, $n, $z), wilson_high($b::DOUBLE, $n, $z)",
                {"b": window[0][2] if window else 0, "n": window[0][1] if window else 0, "z": Z95},
            )
            if window
            else (None, None)
        )
    yield dg.MaterializeResult(
        metadata={
            "reviewed_hours": len(hours),
            **(
                {"last_hour": dg.MetadataValue.text(hours[0][0]), "reviewed": hours[0][1], "bad_rate": hours[0][3]}
                if hours
                else {}
            ),
            "by_hour": dg.MetadataValue.md(_hours_table(hours)),
        }
    )
    yield _check(window, ci, rule)


def _check(window: list[tuple], ci: tuple, rule) -> dg.AssetCheckResult:
    overall = window[0] if window else ("all", 0, 0, None, None)
    _, reviewed, bad, first_hour, last_hour = overall
    rate = bad / reviewed if reviewed else None
    everyone = judge("all", rate, rule.threshold, reviewed, min_sample=rule.min_reviews)
    # The reviewed traffic as a whole fails the check; the models over the threshold explain it.
    models = [
        judge(model, b / n, rule.threshold, n, min_sample=rule.min_reviews, judged=everyone.failed)
        for model, n, b, *_ in window[1:]
    ]
    span = f"{first_hour:%Y-%m-%d %H:00} .. {last_hour:%Y-%m-%d %H:00} UTC" if last_hour else "no verdicts"
    return check_result(
        HUMAN_BAD_RATE,
        "human_quality",
        [everyone, *models],
        severity=dg.AssetCheckSeverity.WARN,
        what="reviewers' bad rate",
        unit="%",
        min_sample=rule.min_reviews,
        note=f"Window: {span} ({rule.window_hours} reviewed hours).",
        metadata={"ci_low": ci[0], "ci_high": ci[1], "window": dg.MetadataValue.text(span)},
    )


def _hours_table(hours: list[tuple]) -> str:
    return markdown.table(
        ["hour (UTC)", "reviewed", "bad", "bad rate", "95 % CI"],
        [(h, n, b, f"{r:.1%}", f"{lo:.1%} – {hi:.1%}") for h, n, b, r, lo, hi in hours],
    )
