"""Reviewer verdict files in the inbox -> review_verdicts and review_verdict_rejects."""

import dagster as dg

from monitoring_pipeline.defs.review import redaction
from monitoring_pipeline.defs.review.sampling import REVIEW_SAMPLE_DDL
from monitoring_pipeline.defs.review.verdicts import inbox_files, load_verdicts
from monitoring_pipeline.lib import markdown
from monitoring_pipeline.lib.db import one
from monitoring_pipeline.resources import DuckDBWarehouse, MonitoringSettings

MAX_LISTED_REJECTS = 50


@dg.asset(
    deps=["review_sample"],
    pool="duckdb",
    group_name="human_review",
    kinds={"duckdb"},
)
def review_verdicts(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse, settings: MonitoringSettings):
    """Human verdicts (good/bad, category, notes) from the review inbox, one row per request."""
    review = settings.load().review
    files = inbox_files(review.inbox_dir)
    with warehouse.get_connection() as conn:
        conn.execute(REVIEW_SAMPLE_DDL)  # verdicts are checked against it, even before the first sample
        redaction.install(conn)
        report = load_verdicts(conn, files)
        total, bad = one(conn, "SELECT count(*), count(*) FILTER (verdict = 'bad') FROM review_verdicts")
    for path, row, reason in report.rejects:
        context.log.warning(f"Rejected {path}" + (f" row {row}" if row is not None else "") + f": {reason}")
    listed = report.rejects[:MAX_LISTED_REJECTS]
    if len(report.rejects) > MAX_LISTED_REJECTS:
        listed.append(("…", None, f"{len(report.rejects) - MAX_LISTED_REJECTS} more in review_verdict_rejects"))
    return dg.MaterializeResult(
        metadata={
            "inbox": dg.MetadataValue.path(review.inbox_dir),
            "files": report.files,
            "rows_read": report.rows,
            "new": report.new,
            "changed": report.changed,
            "unchanged": report.unchanged,
            "rejected": len(report.rejects),
            "rejects": dg.MetadataValue.md(markdown.table(["file", "row", "reason"], listed)),
            "verdicts_total": total,
            "bad_total": bad,
        }
    )
