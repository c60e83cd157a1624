"""llm_requests -> review_sample: what humans read to catch quality drift the metrics miss.

Stratified and capped (monitoring_pipeline.defs.review.sampling), redacted before it is stored
(monitoring_pipeline.defs.review.redaction), and exported per hour as CSV and JSONL for reviewers.
"""

import os
from collections.abc import Iterator

import dagster as dg

from monitoring_pipeline.defs.evaluation.sql import EVALUATION_FLAGS_DDL
from monitoring_pipeline.defs.review import redaction
from monitoring_pipeline.defs.review.export import JUDGE_COLUMNS, export_hours
from monitoring_pipeline.defs.review.sampling import REVIEW_SAMPLE_DDL, SELECT_SAMPLE, STRATA, sample_params
from monitoring_pipeline.lib import hourly, markdown
from monitoring_pipeline.lib.db import one, transaction
from monitoring_pipeline.lib.partitions import hourly_partitions
from monitoring_pipeline.resources import DuckDBWarehouse, MonitoringSettings

SALT_ENV = "MONITORING_REVIEW_SALT"
IN_WINDOW = "WHERE hour >= $start AND hour < $end"


@dg.asset(
    partitions_def=hourly_partitions,
    deps=["llm_requests", "evaluation_flags"],  # after the evaluators: their flags are strata
    pool="duckdb",
    group_name="review",
    kinds={"duckdb"},
    backfill_policy=hourly.BACKFILL_POLICY,
)
@hourly.per_run
def review_sample(
    context: dg.AssetExecutionContext, hours: hourly.Hours, warehouse: DuckDBWarehouse, settings: MonitoringSettings
) -> Iterator[hourly.HourResults]:
    """The hour's review sample: ~1 % at random plus capped strata (PII leaks, safety, errors, other
    evaluator flags, low ratings, slow, every model), redacted, with why each row was picked; exported as CSV and JSONL."""
    review = settings.load().review
    salt = os.environ.get(SALT_ENV) or review.user_id_salt
    if not salt:
        context.log.warning(
            f"No salt for user ids: set {SALT_ENV} or review.user_id_salt, "
            "or user_hash can be reversed by hashing guessed ids."
        )
    with warehouse.get_connection() as conn:
        _drop_unredacted_table(conn, context)
        conn.execute(REVIEW_SAMPLE_DDL)
        conn.execute(EVALUATION_FLAGS_DDL)  # an hour sampled without the evaluators has no flags, not an error
        redaction.install(conn)  # once per run: its patterns cost more to set up than an hour's rows
        with transaction(conn):
            conn.execute(f"DELETE FROM review_sample {IN_WINDOW}", hours.window)
            conn.execute(SELECT_SAMPLE, sample_params(hours.window, review) | {"salt": salt})
        paths = export_hours(conn, hours, review.output_dir)
        requests = dict(
            conn.execute(f"SELECT hour, count(*) FROM llm_requests {IN_WINDOW} GROUP BY hour", hours.window).fetchall()
        )
        rows = dict(
            conn.execute(f"SELECT hour, count(*) FROM review_sample {IN_WINDOW} GROUP BY hour", hours.window).fetchall()
        )
        counts = {
            (hour, reason): n
            for hour, reason, n in conn.execute(
                f"SELECT hour, reason, count(*) FROM (SELECT hour, unnest(reasons) AS reason FROM review_sample "
                f"{IN_WINDOW}) GROUP BY hour, reason",
                hours.window,
            ).fetchall()
        }
        preview = conn.execute(  # the judge's columns: filled on a re-run of a judged hour (export made the table)
            "SELECT hour, request_id, array_to_string(reasons, ', '), model, prompt, response, j.judge_verdict, "
            f"j.judge_reason FROM review_sample LEFT JOIN ({JUDGE_COLUMNS}) j USING (hour, request_id) "
            f"{IN_WINDOW} QUALIFY row_number() OVER (PARTITION BY hour ORDER BY priority, request_id) <= $n "
            "ORDER BY hour, priority, request_id",
            hours.window | {"n": review.preview_rows},
        ).fetchall()

    for key, hour in hours:
        by_stratum = {s: counts.get((hour, s), 0) for s in STRATA}
        yield hourly.HourResults(
            key,
            [
                _hour_result(
                    requests.get(hour, 0),
                    rows.get(hour, 0),
                    by_stratum,
                    [p[1:] for p in preview if p[0] == hour],
                    paths[key],
                    review,
                )
            ],
        )


def _hour_result(
    requests: int, rows: int, by_stratum: dict, preview: list, paths: dict, review
) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={
            "rows": rows,
            "requests": requests,
            "sampled_share": rows / requests if requests else 0.0,
            "max_per_hour": dg.MetadataValue.text(str(review.max_per_hour)),
            "by_stratum": dg.MetadataValue.md(markdown.table(["stratum", "rows"], list(by_stratum.items()))),
            **{f"stratum/{s}": n for s, n in by_stratum.items()},
            "preview": dg.MetadataValue.md(
                markdown.table(
                    ["request_id", "reasons", "model", "prompt", "response", "judge", "judge's reason"],
                    preview,
                    limit=120,
                )
            ),
            "csv": dg.MetadataValue.path(str(paths["csv"])),
            "jsonl": dg.MetadataValue.path(str(paths["json"])),
        }
    )


def _drop_unredacted_table(conn, context) -> None:
    """Samples drawn before redaction existed kept raw user ids and texts: drop them, not migrate."""
    legacy = one(
        conn, "SELECT count(*) FROM duckdb_columns() WHERE table_name = 'review_sample' AND column_name = 'user_id'"
    )[0]
    if legacy:
        context.log.warning("Dropping the old, unredacted review_sample table; re-run past hours to redraw them.")
        conn.execute("DROP TABLE review_sample")
