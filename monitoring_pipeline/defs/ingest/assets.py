"""llm_logs -> llm_requests + quarantine: each hour's files, validated in DuckDB, idempotently (load.py)."""

import math
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import dagster as dg
import duckdb

from monitoring_pipeline.config import MonitoringConfig
from monitoring_pipeline.contract import FIELDS
from monitoring_pipeline.defs.ingest import load, sql
from monitoring_pipeline.defs.ingest.files import LOG_FINGERPRINT, files_gone
from monitoring_pipeline.defs.ingest.logs import llm_logs
from monitoring_pipeline.lib import hourly, markdown
from monitoring_pipeline.lib.checks import FAIL, Scope, check_result, judge
from monitoring_pipeline.lib.partitions import hourly_partitions
from monitoring_pipeline.resources import DuckDBWarehouse, HourFiles, LogSource, MonitoringSettings, folder_files

QUARANTINE_RATE = "quarantine_rate"
# Run tag: let a re-run replace the rows of files that are gone from the hour's folder (expired by
# the log shipper, say) with nothing. Without it such a run fails before it changes anything.
ALLOW_DELETED_FILES = "monitoring/allow_deleted_files"


# Lines per byte of log file, to weigh a range run's hours before reading them (hourly.per_run):
# a line of JSON is ~0.9 KB (bench's generated calls; longer prompts make fewer lines, smaller
# windows), and gzip packs such text ~5-8x (counted as 10x, erring towards smaller windows).
BYTES_PER_LINE = {".jsonl": 900, ".gz": 90}


def lines_in_logs(hours: hourly.Hours, logs: LogSource, **_: object) -> dict[datetime, int]:
    """Estimated lines per hour from its files' sizes (a bucket's are not listed: one window)."""
    if logs.is_remote:
        return {}
    return {
        hour: math.ceil(
            sum(info.st_size / BYTES_PER_LINE[path.suffix] for path, info in folder_files(Path(logs.hour_dir(hour))))
        )
        for _, hour in hours
    }


def _add_field_columns(conn: duckdb.DuckDBPyConnection) -> None:
    """Columns for contract fields the table predates (see sql.MISSING_FIELD_COLUMNS)."""
    by_name = {f.name: f for f in FIELDS}
    for (name,) in conn.execute(sql.MISSING_FIELD_COLUMNS, {"fields": list(by_name)}).fetchall():
        conn.execute(sql.add_field_column(by_name[name]))


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "llm_requests",
            deps=[llm_logs],
            group_name="ingest",
            kinds={"duckdb"},
            description="One row per valid model call of the hour.",
        ),
        dg.AssetSpec(
            "quarantine",
            deps=[llm_logs],
            group_name="ingest",
            kinds={"duckdb"},
            description="The hour's rejected log lines, each with the first contract rule it breaks.",
        ),
    ],
    can_subset=True,  # a range run reports each hour's check as an evaluation, not as the check's output
    partitions_def=hourly_partitions,
    backfill_policy=hourly.BACKFILL_POLICY,
    check_specs=[
        dg.AssetCheckSpec(
            QUARANTINE_RATE,
            asset="llm_requests",
            partitions_def=hourly_partitions,
            description="More than the configured share of the hour's log lines were quarantined.",
        )
    ],
    pool="duckdb",
)
@hourly.per_run(weigh=lines_in_logs)
def llm_requests(
    context: dg.AssetExecutionContext,
    hours: hourly.Hours,
    warehouse: DuckDBWarehouse,
    logs: LogSource,
    settings: MonitoringSettings,
) -> Iterator[hourly.HourResults]:
    """One row per valid model call of the hour; every other line goes to `quarantine` with a reason."""
    # Each folder stat'ed before anything is read: its fingerprint is what this run saw.
    listings = {hour: logs.list_hour(hour) for _, hour in hours}
    with warehouse.get_connection() as conn:
        conn.execute(sql.LLM_REQUESTS_DDL)
        _add_field_columns(conn)
        conn.execute(sql.QUARANTINE_DDL)
        load.list_files(conn, listings)
        gone = files_gone(conn, hours.window)
        if gone and context.run.tags.get(ALLOW_DELETED_FILES, "").lower() != "true":
            raise _files_gone_failure(gone, logs)
        for hour, names in gone.items():
            for name, rows in names.items():
                context.log.warning(
                    f"{name} is gone from {logs.hour_dir(hour)}: its {rows} rows are dropped ({ALLOW_DELETED_FILES})"
                )
        # An unreadable file counts as one line read and one row quarantined, so the hour reconciles.
        replaced = load.replace_hours(conn, listings, context.log)
        ingested = dict(conn.execute(_INGESTED, hours.window).fetchall())
        reasons: dict[datetime, dict[str, int]] = {}
        for hour, reason, rows in conn.execute(_REASONS, hours.window).fetchall():
            reasons.setdefault(hour, {})[reason] = rows

    config = settings.load()
    for key, hour in hours:
        yield hourly.HourResults(
            key,
            _hour_results(
                context.log,
                hour,
                listings[hour],
                replaced[hour],
                ingested.get(hour, 0),
                reasons.get(hour, {}),
                gone.get(hour, {}),
                logs,
                config,
            ),
        )


_INGESTED = "SELECT hour, count(*) FROM llm_requests WHERE hour >= $start AND hour < $end GROUP BY ALL"
_REASONS = """
SELECT hour, CASE WHEN line_number IS NULL THEN 'unreadable_file' ELSE reason END AS r, count(*)
FROM quarantine WHERE hour >= $start AND hour < $end GROUP BY ALL ORDER BY 1, 3 DESC, 2
"""


def _files_gone_failure(gone: dict[datetime, dict[str, int]], logs: LogSource) -> dg.Failure:
    """The run stops before it changes anything: some of its hours were ingested from files that
    are gone now."""
    first = min(gone)
    said = " ".join(
        f"{hour:%Y-%m-%d %H}:00 UTC was ingested from {len(names)} file(s) no longer in "
        f"{logs.hour_dir(hour)} ({sum(names.values())} rows): {', '.join(sorted(names))[:1000]}."
        for hour, names in sorted(gone.items())
    )
    return dg.Failure(
        description=(
            f"{said} Nothing was changed. Restore the files, or re-run with the run tag "
            f"{ALLOW_DELETED_FILES}=true to replace those rows with what the folder holds now."
        ),
        metadata={
            "hour": f"{first:%Y-%m-%d %H}:00",
            "folder": logs.hour_dir(first),
            "files_gone": gone[first],
            **({"hours_with_files_gone": [f"{hour:%Y-%m-%d %H}:00" for hour in sorted(gone)]} if len(gone) > 1 else {}),
        },
    )


def _hour_results(
    log,
    hour: datetime,
    listing: HourFiles,
    replaced: load.Replaced,
    ingested: int,
    reasons: dict[str, int],
    gone: dict[str, int],
    logs: LogSource,
    config: MonitoringConfig,
) -> list[hourly.Result]:
    """What one hour records: llm_requests (its figures and the quarantine_rate check) and quarantine."""
    files = listing.files
    lines_read, unreadable = replaced.lines_read, replaced.unreadable
    quarantined = sum(reasons.values())
    if not files and not listing.refused:
        log.warning(f"No log files for {hour:%Y-%m-%d %H}:00 UTC in {logs.hour_dir(hour)}")
    for path, error in unreadable:
        log.error(f"Unreadable log file {path}: {error}")
    threshold = config.thresholds.quarantine_rate
    rate = quarantined / lines_read if lines_read else 0.0
    min_sample = config.min_sample.get(QUARANTINE_RATE, 1)
    overall = judge("all", rate, threshold, lines_read, min_sample=min_sample)
    if unreadable:  # fails whatever the rate or the sample: a whole file of the hour is missing
        overall = Scope("all", rate, threshold, lines_read, FAIL)
    return [
        dg.MaterializeResult(
            asset_key="llm_requests",
            metadata={
                "files": len(files) + len(listing.refused),
                "unreadable_files": len(unreadable),
                "lines_read": lines_read,
                "rows_ingested": ingested,
                "rows_quarantined": quarantined,
                "quarantine_reasons": reasons,
                **({LOG_FINGERPRINT: listing.fingerprint} if listing.fingerprint else {}),
                "log_files": listing.names,
                **({"files_gone": gone} if gone else {}),
                "exact_path_files": replaced.exact_path_files,
                "fast_path_fallback": int(bool(replaced.fallback_reason)),
                "lenient_read_files": replaced.lenient_files,
                "fallback_reason": replaced.fallback_reason,
            },
            check_results=[
                check_result(
                    QUARANTINE_RATE,
                    "llm_requests",
                    [overall],
                    severity=dg.AssetCheckSeverity.WARN,
                    what="quarantined share of lines",
                    unit="%",
                    min_sample=min_sample,
                    note=f"{len(unreadable)} unreadable file(s)." if unreadable else "",
                    metadata={"unreadable_files": len(unreadable), "quarantine_reasons": reasons},
                )
            ],
        ),
        dg.MaterializeResult(asset_key="quarantine", metadata=quarantine_metadata(reasons, quarantined, lines_read)),
    ]


def quarantine_metadata(reasons: dict[str, int], quarantined: int, lines_read: int) -> dict:
    """Rows per reason as numbers (`reason/<reason>`, plotted across hours) and as a table."""
    rows = [(reason, count, f"{count / lines_read:.2%}" if lines_read else "n/a") for reason, count in reasons.items()]
    return {
        "rows": quarantined,
        "share_of_lines": round(quarantined / lines_read, 6) if lines_read else 0.0,
        **{f"reason/{reason}": count for reason, count in reasons.items()},
        "reasons": dg.MetadataValue.md(markdown.table(["reason", "rows", "share of lines"], rows)),
    }
