"""logs -> llm_requests + quarantine: the hour's files, validated in DuckDB, idempotently."""

import dagster as dg
import duckdb

from monitoring_pipeline.defs.ingest import sql
from monitoring_pipeline.lib import hourly
from monitoring_pipeline.lib.checks import FAIL, Scope, check_result, judge
from monitoring_pipeline.lib.db import one, transaction
from monitoring_pipeline.lib.partitions import hourly_partitions
from monitoring_pipeline.resources import DuckDBWarehouse, LogSource, MonitoringSettings

QUARANTINE_RATE = "quarantine_rate"


class FilesChanged(Exception):
    """The fast pass does not add up (a file grew or changed between its scans)."""


def _replace_hour(conn: duckdb.DuckDBPyConnection, files: list[str], hour, log) -> tuple[int, list[tuple[str, str]]]:
    """Replace the hour's rows in llm_requests and quarantine, in one transaction. Returns the
    number of lines read and the files DuckDB could not open or decompress (a corrupt .gz, say),
    which are quarantined whole instead of failing the hour."""
    try:
        with transaction(conn):
            _delete_hour(conn, hour)
            settled, exact = _load_fast(conn, files, hour)
            numbered = _stage_files(conn, exact, hour) if exact else _stage_nothing(conn, hour)
            _insert_staged(conn, hour, numbered, [])
            return settled + _staged_lines(conn), []
    except (duckdb.Error, FilesChanged) as err:  # a file that cannot be read, or changed: stage file by file
        log.info(f"Staging the hour file by file: {str(err).splitlines()[0][:500]}")
    conn.execute("RESET preserve_insertion_order")  # in case the RESET in _load_fast met an aborted transaction
    unreadable, numbered = _stage(conn, files, hour)
    with transaction(conn):
        _delete_hour(conn, hour)
        _insert_staged(conn, hour, numbered, unreadable)
    return _staged_lines(conn) + len(unreadable), unreadable


def _delete_hour(conn: duckdb.DuckDBPyConnection, hour) -> None:
    conn.execute("DELETE FROM llm_requests WHERE hour = $hour", {"hour": hour})
    conn.execute("DELETE FROM quarantine WHERE hour = $hour", {"hour": hour})


def _load_fast(conn: duckdb.DuckDBPyConnection, files: list[str], hour) -> tuple[int, list[str]]:
    """The fast pass (see ingest_sql.INSERT_VALID_LINES): load every file's valid lines at once,
    in parallel; quarantine the bad lines of files that have some; take back the rows of the files
    that need the exact path. Returns the lines of the files settled, and the files left."""
    if not files:
        return 0, []
    conn.execute("SET preserve_insertion_order = false")  # rows land in any order; nothing reads them in order
    try:
        conn.execute(sql.INSERT_VALID_LINES, {"files": files, "hour": hour})
    finally:
        conn.execute("RESET preserve_insertion_order")  # the numbered scans rely on file order
    conn.execute(sql.DROP_REJECTS)
    conn.execute(sql.COUNT_LINES, {"files": files})
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
    conn.execute(sql.STAGE.format(source=sql.NUMBERED_LINES), {"hour": hour})
    return True


def _stage_files(conn: duckdb.DuckDBPyConnection, files: list[str], hour) -> bool:
    """The exact path: every line of the files numbered and classified into _staged, with the
    rules that need more than one line. Returns whether _staged.seq is already the line number."""
    params = {"files": files, "hour": hour}
    conn.execute(sql.DROP_REJECTS)
    conn.execute(sql.STAGE.format(source=sql.SCAN_LINES), params)
    source, numbered = sql.SCAN_LINES, False
    if one(conn, "SELECT count(*) FROM _rejects")[0]:
        # Lines DuckDB could not decode: number every line exactly, then classify again.
        conn.execute(sql.DROP_REJECTS)
        conn.execute(sql.READ_LINES, {"files": files})
        conn.execute(sql.NUMBER_LINES)
        source, numbered, params = sql.NUMBERED_LINES, True, {"hour": hour}
        conn.execute(sql.STAGE.format(source=source), params)
    conn.execute(sql.MARK_TRUNCATED)
    conn.execute(sql.MARK_DUPLICATES)
    if one(conn, "SELECT count(*) FROM _staged WHERE reason = 'duplicate_request_id'")[0]:
        if not numbered:
            conn.execute(sql.DROP_REJECTS)
        conn.execute(sql.FILL_DUPLICATE_LINES.format(source=source), {k: v for k, v in params.items() if k == "files"})
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
            group_name="ingest",
            kinds={"duckdb"},
            description="One row per valid model call of the hour; every other line goes to `quarantine` with a reason.",
        )
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
) -> dg.MaterializeResult:
    """One row per valid model call of the hour; every other line goes to `quarantine` with a reason."""
    hour = context.partition_time_window.start.replace(tzinfo=None)
    files = logs.files_for_hour(hour)
    with warehouse.get_connection() as conn:
        conn.execute(sql.LLM_REQUESTS_DDL)
        conn.execute(sql.QUARANTINE_DDL)
        # An unreadable file counts as one line read and one row quarantined, so the hour reconciles.
        lines_read, unreadable = _replace_hour(conn, files, hour, context.log)
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

    if not files:
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
    return dg.MaterializeResult(
        metadata={
            "files": len(files),
            "unreadable_files": len(unreadable),
            "lines_read": lines_read,
            "rows_ingested": ingested,
            "rows_quarantined": quarantined,
            "quarantine_reasons": reasons,
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
