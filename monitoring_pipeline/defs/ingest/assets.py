"""llm_logs -> llm_requests + quarantine: the hour's files, validated in DuckDB, idempotently."""

import os
import re
from collections.abc import Iterator
from typing import NamedTuple

import dagster as dg
import duckdb

from monitoring_pipeline.contract import FIELDS
from monitoring_pipeline.defs.ingest import sql
from monitoring_pipeline.defs.ingest.files import LOG_FINGERPRINT, check_line_lengths, files_gone
from monitoring_pipeline.defs.ingest.logs import llm_logs
from monitoring_pipeline.lib import hourly, markdown
from monitoring_pipeline.lib.checks import FAIL, Scope, check_result, judge
from monitoring_pipeline.lib.db import one, transaction
from monitoring_pipeline.lib.partitions import hourly_partitions
from monitoring_pipeline.resources import DuckDBWarehouse, LogSource, MonitoringSettings

QUARANTINE_RATE = "quarantine_rate"
# Run tag: let a re-run replace the rows of files that are gone from the hour's folder (expired by
# the log shipper, say) with nothing. Without it such a run fails before it changes anything.
ALLOW_DELETED_FILES = "monitoring/allow_deleted_files"


class FilesChanged(Exception):
    """The fast pass does not add up (a file grew or changed between its scans)."""


class StrictReadFailed(Exception):
    """The strict fast read met a line it refuses (malformed, not an object, a duplicate key)."""

    def __init__(self, err: duckdb.Error, files: list[str]):
        super().__init__(str(err))
        named = re.search(r'in file "(.*?)", (?:at byte \d+ )?in line \d+', str(err))
        self.file = named.group(1) if named and named.group(1) in files else None


class Replaced(NamedTuple):
    lines_read: int
    unreadable: list[tuple[str, str]]  # files not read (DuckDB could not, or refused), with the reason
    exact_path_files: int  # files classified line by line with exact numbers (the slower path)
    fallback_reason: str  # why the whole hour left the fast path; "" when it did not
    lenient_files: int  # files the fast pass read leniently because the strict read refused a line


def _replace_hour(
    conn: duckdb.DuckDBPyConnection, files: list[str], hour, log, refused: list[tuple[str, str]]
) -> Replaced:
    """Replace the hour's rows in llm_requests and quarantine, in one transaction. Files DuckDB
    could not open or decompress (a corrupt .gz, say) are quarantined whole instead of failing the
    hour, with the `refused` files (never read). The fast path failing costs the hour about twice
    the time, and a bug in the generated SQL would make every hour pay it, so it is a warning and
    shows in the metadata."""
    lenient: list[str] = []  # the files read leniently: none (clean hours), then the one named, then all
    while True:
        try:
            with transaction(conn):
                _delete_hour(conn, hour)
                settled, exact = _load_fast(conn, files, hour, lenient)
                numbered = _stage_files(conn, exact, hour) if exact else _stage_nothing(conn, hour)
                _insert_staged(conn, hour, numbered, refused)
                return Replaced(settled + _staged_lines(conn) + len(refused), refused, len(exact), "", len(lenient))
        except StrictReadFailed as err:  # the transaction is aborted: again, reading leniently what it names
            conn.execute("RESET preserve_insertion_order")
            lenient = [*lenient, err.file] if err.file and err.file not in lenient and not lenient else list(files)
            continue
        except (duckdb.Error, FilesChanged) as err:  # a file that cannot be read, or changed: stage file by file
            reason = f"{type(err).__name__}: {str(err).splitlines()[0][:500]}"
            log.warning(f"Staging the hour file by file, off the fast path: {reason}")
            break
    check_line_lengths(files)  # a line over 16 MB is one reason to be here; one past DuckDB's buffer fails the run
    conn.execute("RESET preserve_insertion_order")  # in case the RESET in _load_fast met an aborted transaction
    unread, numbered = _stage(conn, files, hour)
    unreadable = [*unread, *refused]
    with transaction(conn):
        _delete_hour(conn, hour)
        _insert_staged(conn, hour, numbered, unreadable)
    return Replaced(_staged_lines(conn) + len(unreadable), unreadable, len(files) - len(unread), reason, len(lenient))


def _add_field_columns(conn: duckdb.DuckDBPyConnection) -> None:
    """Columns for contract fields the table predates (see sql.MISSING_FIELD_COLUMNS)."""
    by_name = {f.name: f for f in FIELDS}
    for (name,) in conn.execute(sql.MISSING_FIELD_COLUMNS, {"fields": list(by_name)}).fetchall():
        conn.execute(sql.add_field_column(by_name[name]))


def _delete_hour(conn: duckdb.DuckDBPyConnection, hour) -> None:
    conn.execute("DELETE FROM llm_requests WHERE hour = $hour", {"hour": hour})
    conn.execute("DELETE FROM quarantine WHERE hour = $hour", {"hour": hour})


def _load_fast(conn: duckdb.DuckDBPyConnection, files: list[str], hour, lenient: list[str]) -> tuple[int, list[str]]:
    """The fast pass (see sql.insert_valid_lines): load every file's valid lines at once, in
    parallel, reading strictly all but the `lenient` files; quarantine the bad lines of files that
    have some; take back the rows of the files that need the exact path (a duplicate key among
    them). Returns the lines of the files settled, and the files left. Raises StrictReadFailed
    when the strict read refuses a line (then the transaction is aborted)."""
    if not files:
        return 0, []
    # smallest first: a refused line in a small file (the common dirty hour) fails the read early
    strict = sorted((f for f in files if f not in lenient), key=_size)
    conn.execute("SET preserve_insertion_order = false")  # rows land in any order; nothing reads them in order
    try:
        conn.execute(
            sql.insert_valid_lines(strict=bool(strict), lenient=bool(lenient)),
            {"hour": hour, **({"strict": strict} if strict else {}), **({"lenient": lenient} if lenient else {})},
        )
    except duckdb.InvalidInputException as err:  # the transaction is aborted: the caller resets after the rollback
        if strict:
            raise StrictReadFailed(err, files) from err
        raise
    conn.execute("RESET preserve_insertion_order")  # the numbered scans rely on file order
    conn.execute(sql.DROP_REJECTS)
    conn.execute(sql.COUNT_LINES, {"files": files, "lenient": lenient})
    status = conn.execute(sql.FILE_STATUS, {"hour": hour}).fetchall()
    exact = [f for f, _, _, needs_exact in status if needs_exact]
    bad_lines = {f: lines - loaded for f, lines, loaded, needs_exact in status if not needs_exact and loaded != lines}
    if exact:
        conn.execute(
            "DELETE FROM llm_requests WHERE hour = $hour AND source_file IN (SELECT unnest($files))",
            {"hour": hour, "files": exact},
        )
    if bad_lines:
        _quarantine_bad_lines(conn, bad_lines, hour)
    return sum(lines for _, lines, _, needs_exact in status if not needs_exact), exact


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _quarantine_bad_lines(conn: duckdb.DuckDBPyConnection, expected: dict[str, int], hour) -> None:
    """Number and quarantine the bad lines of files whose valid rows the fast pass loaded;
    `expected`: how many each file has (its lines minus its rows)."""
    files = sorted(expected)
    conn.execute(sql.BAD_LINES, {"files": files, "hour": hour})
    conn.execute(sql.LOCATE_BAD_LINES, {"files": files})
    found = dict(conn.execute("SELECT source_file, count(*) FROM _bad_lines GROUP BY ALL").fetchall())
    located = dict(conn.execute("SELECT source_file, count(*) FROM _located GROUP BY ALL").fetchall())
    if not expected == found == located:
        raise FilesChanged(f"bad lines per file: {expected} from the counts, {found} classified, {located} located")
    conn.execute(sql.INSERT_LOCATED, {"hour": hour})


def _stage(conn: duckdb.DuckDBPyConnection, files: list[str], hour) -> tuple[list[tuple[str, str]], bool]:
    """Classify the files' lines into _staged, leaving out the files DuckDB cannot read. Returns
    those files with their error, and whether _staged.seq is already the line number."""
    if not files:
        return [], _stage_nothing(conn, hour)
    try:
        return [], _stage_files(conn, files, hour)
    except duckdb.Error:
        readable, unreadable = [], []
        for f in files:  # find the culprit(s); the common path above reads all files in one scan
            try:
                _stage_files(conn, [f], hour)
                readable.append(f)
            except duckdb.Error as err:
                unreadable.append((f, str(err).splitlines()[0][:500]))
        _, numbered = _stage(conn, readable, hour)
        return unreadable, numbered


def _stage_nothing(conn: duckdb.DuckDBPyConnection, hour) -> bool:
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE _numbered (source_file VARCHAR, line_number BIGINT,"
        " line VARCHAR, read_error VARCHAR)"
    )
    conn.execute(sql.stage(sql.NUMBERED_LINES), {"hour": hour})
    return True


def _stage_files(conn: duckdb.DuckDBPyConnection, files: list[str], hour) -> bool:
    """The exact path: every line of the files numbered and classified into _staged, with the
    rules that need more than one line. Returns whether _staged.seq is already the line number."""
    params = {"files": files, "hour": hour}
    conn.execute(sql.DROP_REJECTS)
    conn.execute(sql.stage(sql.SCAN_LINES), params)
    source, numbered = sql.SCAN_LINES, False
    if one(conn, "SELECT count(*) FROM _rejects")[0]:
        # Lines DuckDB could not decode: number every line exactly, then classify again.
        conn.execute(sql.DROP_REJECTS)
        conn.execute(sql.READ_LINES, {"files": files})
        conn.execute(sql.NUMBER_LINES)
        source, numbered, params = sql.NUMBERED_LINES, True, {"hour": hour}
        conn.execute(sql.stage(source), params)
    conn.execute(sql.MARK_TRUNCATED)
    conn.execute(sql.MARK_DUPLICATES)
    if one(conn, "SELECT count(*) FROM _staged WHERE reason = 'duplicate_request_id'")[0]:
        if not numbered:
            conn.execute(sql.DROP_REJECTS)
        conn.execute(sql.fill_duplicate_lines(source), {k: v for k, v in params.items() if k == "files"})
    return numbered


def _insert_staged(conn: duckdb.DuckDBPyConnection, hour, numbered: bool, unreadable: list[tuple[str, str]]) -> None:
    conn.execute(sql.INSERT_REQUESTS, {"hour": hour})
    conn.execute(sql.INSERT_QUARANTINE, {"hour": hour, "numbered": numbered})
    for path, error in unreadable:
        conn.execute(
            "INSERT INTO quarantine VALUES ($hour, $file, NULL, $reason, NULL, now()::TIMESTAMP)",
            {"hour": hour, "file": path, "reason": f"unreadable_file: {error}"},
        )


def _staged_lines(conn: duckdb.DuckDBPyConnection) -> int:
    return one(conn, "SELECT count(*) FROM _staged")[0]


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
@hourly.per_hour
def llm_requests(
    context: dg.AssetExecutionContext,
    warehouse: DuckDBWarehouse,
    logs: LogSource,
    settings: MonitoringSettings,
) -> Iterator[dg.MaterializeResult]:
    """One row per valid model call of the hour; every other line goes to `quarantine` with a reason."""
    hour = context.partition_time_window.start.replace(tzinfo=None)
    listing = logs.list_hour(hour)  # stat'ed before anything is read: its fingerprint is what this run saw
    files = listing.files
    with warehouse.get_connection() as conn:
        conn.execute(sql.LLM_REQUESTS_DDL)
        _add_field_columns(conn)
        conn.execute(sql.QUARANTINE_DDL)
        gone = files_gone(conn, hour, listing.names)
        if gone and context.run.tags.get(ALLOW_DELETED_FILES, "").lower() != "true":
            raise dg.Failure(
                description=(
                    f"{hour:%Y-%m-%d %H}:00 UTC was ingested from {len(gone)} file(s) no longer in "
                    f"{logs.hour_dir(hour)} ({sum(gone.values())} rows): {', '.join(sorted(gone))[:1000]}. "
                    f"Nothing was changed. Restore the files, or re-run with the run tag "
                    f"{ALLOW_DELETED_FILES}=true to replace those rows with what the folder holds now."
                ),
                metadata={"hour": f"{hour:%Y-%m-%d %H}:00", "folder": logs.hour_dir(hour), "files_gone": gone},
            )
        for name, rows in gone.items():
            context.log.warning(
                f"{name} is gone from {logs.hour_dir(hour)}: its {rows} rows are dropped ({ALLOW_DELETED_FILES})"
            )
        # An unreadable file counts as one line read and one row quarantined, so the hour reconciles.
        replaced = _replace_hour(conn, files, hour, context.log, listing.refused)
        lines_read, unreadable = replaced.lines_read, replaced.unreadable
        ingested, quarantined = one(
            conn,
            "SELECT (SELECT count(*) FROM llm_requests WHERE hour = $hour),"
            " (SELECT count(*) FROM quarantine WHERE hour = $hour)",
            {"hour": hour},
        )
        reasons = dict(
            conn.execute(
                "SELECT CASE WHEN line_number IS NULL THEN 'unreadable_file' ELSE reason END AS r, count(*)"
                " FROM quarantine WHERE hour = $hour GROUP BY ALL ORDER BY 2 DESC, 1",
                {"hour": hour},
            ).fetchall()
        )

    if not files and not listing.refused:
        context.log.warning(f"No log files for {hour:%Y-%m-%d %H}:00 UTC in {logs.hour_dir(hour)}")
    for path, error in unreadable:
        context.log.error(f"Unreadable log file {path}: {error}")
    config = settings.load()
    threshold = config.thresholds.quarantine_rate
    rate = quarantined / lines_read if lines_read else 0.0
    min_sample = config.min_sample.get(QUARANTINE_RATE, 1)
    overall = judge("all", rate, threshold, lines_read, min_sample=min_sample)
    if unreadable:  # fails whatever the rate or the sample: a whole file of the hour is missing
        overall = Scope("all", rate, threshold, lines_read, FAIL)
    yield dg.MaterializeResult(
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
    )
    yield dg.MaterializeResult(asset_key="quarantine", metadata=quarantine_metadata(reasons, quarantined, lines_read))


def quarantine_metadata(reasons: dict[str, int], quarantined: int, lines_read: int) -> dict:
    """Rows per reason as numbers (`reason/<reason>`, plotted across hours) and as a table."""
    rows = [(reason, count, f"{count / lines_read:.2%}" if lines_read else "n/a") for reason, count in reasons.items()]
    return {
        "rows": quarantined,
        "share_of_lines": round(quarantined / lines_read, 6) if lines_read else 0.0,
        **{f"reason/{reason}": count for reason, count in reasons.items()},
        "reasons": dg.MetadataValue.md(markdown.table(["reason", "rows", "share of lines"], rows)),
    }
