"""Replace the rows of a run's hours in llm_requests and quarantine: every file of every hour read
at once (sql.py's fast pass), each line judged against its own file's hour, in one transaction.
A backfill's run of many hours pays each statement's fixed cost (planning the generated SQL,
most of an hour's time at ~200 lines) once instead of once an hour."""

import os
import re
from collections import Counter
from datetime import datetime, timedelta
from typing import NamedTuple

import duckdb

from monitoring_pipeline.defs.ingest import sql
from monitoring_pipeline.defs.ingest.files import check_line_lengths
from monitoring_pipeline.lib.db import one, transaction
from monitoring_pipeline.resources import HourFiles


class FilesChanged(Exception):
    """The fast pass does not add up (a file grew or changed between its scans)."""


class StrictReadFailed(Exception):
    """The strict fast read met a line it refuses (malformed, not an object, a duplicate key)."""

    def __init__(self, err: duckdb.Error, files: list[str]):
        super().__init__(str(err))
        named = re.search(r'in file "(.*?)", (?:at byte \d+ )?in line \d+', str(err))
        self.file = named.group(1) if named and named.group(1) in files else None


class Replaced(NamedTuple):
    """How one hour was replaced."""

    lines_read: int
    unreadable: list[tuple[str, str]]  # files not read (DuckDB could not, or refused), with the reason
    exact_path_files: int  # files classified line by line with exact numbers (the slower path)
    fallback_reason: str  # why the whole hour left the fast path; "" when it did not
    lenient_files: int  # files the fast pass read leniently because the strict read refused a line


def list_files(conn: duckdb.DuckDBPyConnection, listings: dict[datetime, HourFiles]) -> None:
    """Every file of the run's hours with its hour, as sql.LISTING (the statements read it)."""
    rows: list[tuple[datetime, str, str | None]] = [
        (hour, path, None) for hour, listing in listings.items() for path in listing.files
    ]
    rows += [(hour, path, why) for hour, listing in listings.items() for path, why in listing.refused]
    conn.execute(
        sql.LISTING,
        {
            "hours": [hour for hour, _, _ in rows],
            "paths": [path for _, path, _ in rows],
            "names": [path.rsplit("/", 1)[-1] for _, path, _ in rows],  # as HourFiles.names
            "refused": [why for _, _, why in rows],
        },
    )


def replace_hours(
    conn: duckdb.DuckDBPyConnection, listings: dict[datetime, HourFiles], log
) -> dict[datetime, Replaced]:
    """Replace the listed hours' rows in llm_requests and quarantine (list_files first), in one
    transaction. Files DuckDB could not open or decompress (a corrupt .gz, say) are quarantined
    whole instead of failing the hour, with the refused files (never read).

    All the hours' files are read at once. A line the strict read refuses makes the file it names
    read leniently (then all of that file's hour), as a run of that hour alone would. Any other
    failure (a file DuckDB cannot read, counts that do not add up) replaces the hours one by one,
    each as a run of that hour alone (its own transaction); a single hour then leaves the fast
    path and is staged file by file. That costs the hour about twice the time, and a bug in the
    generated SQL would make every hour pay it, so it is a warning and shows in the metadata."""
    hours = list(listings)
    files = {hour: listing.files for hour, listing in listings.items()}
    hour_of = {path: hour for hour, paths in files.items() for path in paths}
    window = {"start": hours[0], "end": hours[-1] + timedelta(hours=1)}
    lenient: dict[datetime, list[str]] = {hour: [] for hour in hours}  # none (clean), the one named, then all
    while True:
        try:
            with transaction(conn):
                _delete_window(conn, window)
                settled, exact, undecodable = _load_fast(conn, hour_of, window, lenient)
                numbered = _stage_files(conn, exact, undecodable) if exact else None
                if numbered is not None:
                    _insert_staged(conn, numbered)
                for hour, listing in listings.items():
                    _quarantine_files(conn, hour, listing.refused)
                staged = _staged_lines(conn) if numbered is not None else {}
            exact_files = Counter(hour_of[path] for path in exact)
            return {
                hour: Replaced(
                    settled[hour] + staged.get(hour, 0) + len(listing.refused),
                    listing.refused,
                    exact_files[hour],
                    "",
                    len(lenient[hour]),
                )
                for hour, listing in listings.items()
            }
        except StrictReadFailed as err:  # the transaction is aborted: again, reading leniently what it names
            conn.execute("RESET preserve_insertion_order")
            named = hours[0] if len(hours) == 1 else hour_of.get(err.file or "")
            if named is not None:
                more = [err.file] if err.file and not lenient[named] else files[named]
                if more != lenient[named]:
                    lenient[named] = more
                    continue
            failure: Exception = err  # not pinned on an hour, or that hour is read leniently already
        except (duckdb.Error, FilesChanged) as err:  # a file that cannot be read, or changed
            failure = err
        reason = f"{type(failure).__name__}: {str(failure).splitlines()[0][:500]}"
        if len(hours) > 1:
            log.info(f"Replacing the run's {len(hours)} hours one by one: {reason}")
            return {hour: replace_hours(conn, {hour: listing}, log)[hour] for hour, listing in listings.items()}
        return _replace_hour_staged(conn, hours[0], listings[hours[0]], window, log, reason, len(lenient[hours[0]]))


def _replace_hour_staged(
    conn: duckdb.DuckDBPyConnection, hour: datetime, listing: HourFiles, window: dict, log, reason: str, lenient: int
) -> dict[datetime, Replaced]:
    """One hour off the fast path: staged file by file."""
    log.warning(f"Staging the hour file by file, off the fast path: {reason}")
    # a line over 16 MB is one reason to be here; one past DuckDB's buffer fails the run
    check_line_lengths(listing.files)
    conn.execute("RESET preserve_insertion_order")  # in case the RESET in _load_fast met an aborted transaction
    unread, numbered = _stage(conn, listing.files)
    unreadable = [*unread, *listing.refused]
    with transaction(conn):
        _delete_window(conn, window)
        if numbered is not None:
            _insert_staged(conn, numbered)
        _quarantine_files(conn, hour, unreadable)
    staged = _staged_lines(conn).get(hour, 0) if numbered is not None else 0
    return {hour: Replaced(staged + len(unreadable), unreadable, len(listing.files) - len(unread), reason, lenient)}


def _delete_window(conn: duckdb.DuckDBPyConnection, window: dict) -> None:
    conn.execute("DELETE FROM llm_requests WHERE hour >= $start AND hour < $end", window)
    conn.execute("DELETE FROM quarantine WHERE hour >= $start AND hour < $end", window)


def _load_fast(
    conn: duckdb.DuckDBPyConnection, hour_of: dict[str, datetime], window: dict, lenient: dict[datetime, list[str]]
) -> tuple[Counter[datetime], list[str], bool]:
    """The fast pass (see sql.insert_valid_lines): load every file's valid lines at once, in
    parallel, reading strictly all but the `lenient` files; quarantine the bad lines of files that
    have some; take back the rows of the files that need the exact path (a duplicate key among
    them). Returns the lines of the files settled, per hour, the files left, and whether one of
    those has a line DuckDB cannot decode (then they are numbered line by line). Raises
    StrictReadFailed when the strict read refuses a line (then the transaction is aborted)."""
    settled: Counter[datetime] = Counter()
    files = list(hour_of)
    if not files:
        return settled, [], False
    read_leniently = [path for paths in lenient.values() for path in paths]
    # smallest first: a refused line in a small file (the common dirty hour) fails the read early
    strict = sorted((f for f in files if f not in read_leniently), key=_size)
    conn.execute("SET preserve_insertion_order = false")  # rows land in any order; nothing reads them in order
    try:
        conn.execute(
            sql.insert_valid_lines(strict=bool(strict), lenient=bool(read_leniently)),
            {**({"strict": strict} if strict else {}), **({"lenient": read_leniently} if read_leniently else {})},
        )
    except duckdb.InvalidInputException as err:  # the transaction is aborted: the caller resets after the rollback
        if strict:
            raise StrictReadFailed(err, files) from err
        raise
    conn.execute("RESET preserve_insertion_order")  # the numbered scans rely on file order
    conn.execute(sql.DROP_REJECTS)
    conn.execute(sql.COUNT_LINES, {"files": files, "lenient": read_leniently})
    status = conn.execute(sql.FILE_STATUS, window).fetchall()
    exact = [f for _, f, _, _, needs_exact, _ in status if needs_exact]
    bad_lines = {
        f: lines - loaded for _, f, lines, loaded, needs_exact, _ in status if not needs_exact and loaded != lines
    }
    if exact:
        conn.execute(
            "DELETE FROM llm_requests WHERE hour >= $start AND hour < $end AND source_file IN (SELECT unnest($files))",
            {**window, "files": exact},
        )
    if bad_lines:
        _quarantine_bad_lines(conn, bad_lines, window)
    for hour, _, lines, _, needs_exact, _ in status:
        if not needs_exact:
            settled[hour] += lines
    return settled, exact, any(undecodable for *_, undecodable in status)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _quarantine_bad_lines(conn: duckdb.DuckDBPyConnection, expected: dict[str, int], window: dict) -> None:
    """Number and quarantine the bad lines of files whose valid rows the fast pass loaded;
    `expected`: how many each file has (its lines minus its rows)."""
    files = sorted(expected)
    conn.execute(sql.BAD_LINES, {**window, "files": files})
    conn.execute(sql.LOCATE_BAD_LINES, {"files": files})
    found = dict(conn.execute("SELECT source_file, count(*) FROM _bad_lines GROUP BY ALL").fetchall())
    located = dict(conn.execute("SELECT source_file, count(*) FROM _located GROUP BY ALL").fetchall())
    if not expected == found == located:
        raise FilesChanged(f"bad lines per file: {expected} from the counts, {found} classified, {located} located")
    conn.execute(sql.INSERT_LOCATED)


def _stage(conn: duckdb.DuckDBPyConnection, files: list[str]) -> tuple[list[tuple[str, str]], bool | None]:
    """Classify the files' lines into _staged, leaving out the files DuckDB cannot read. Returns
    those files with their error, and whether _staged.seq is already the line number (None when
    nothing was staged)."""
    if not files:
        return [], None
    try:
        return [], _stage_files(conn, files)
    except duckdb.Error:
        readable, unreadable = [], []
        for f in files:  # find the culprit(s); the common path above reads all files in one scan
            try:
                _stage_files(conn, [f])
                readable.append(f)
            except duckdb.Error as err:
                unreadable.append((f, str(err).splitlines()[0][:500]))
        _, numbered = _stage(conn, readable)
        return unreadable, numbered


def _stage_files(conn: duckdb.DuckDBPyConnection, files: list[str], undecodable: bool = False) -> bool:
    """The exact path: every line of the files numbered and classified into _staged, with the
    rules that need more than one line. Returns whether _staged.seq is already the line number
    (always when the files are known to have an `undecodable` line)."""
    params: dict = {"files": files}
    source, numbered = sql.SCAN_LINES, False
    if not undecodable:
        conn.execute(sql.DROP_REJECTS)
        conn.execute(sql.stage(sql.SCAN_LINES), params)
        undecodable = bool(one(conn, "SELECT count(*) FROM _rejects")[0])
    if undecodable:
        # Lines DuckDB could not decode: number every line exactly, then classify.
        conn.execute(sql.DROP_REJECTS)
        conn.execute(sql.READ_LINES, params)
        conn.execute(sql.NUMBER_LINES)
        source, numbered, params = sql.NUMBERED_LINES, True, {}
        conn.execute(sql.stage(source))
    conn.execute(sql.MARK_TRUNCATED)
    conn.execute(sql.MARK_DUPLICATES)
    if one(conn, "SELECT count(*) FROM _staged WHERE reason = 'duplicate_request_id'")[0]:
        if not numbered:
            conn.execute(sql.DROP_REJECTS)
        conn.execute(sql.fill_duplicate_lines(source), params)
    return numbered


def _insert_staged(conn: duckdb.DuckDBPyConnection, numbered: bool) -> None:
    conn.execute(sql.INSERT_REQUESTS)
    conn.execute(sql.INSERT_QUARANTINE, {"numbered": numbered})


def _quarantine_files(conn: duckdb.DuckDBPyConnection, hour: datetime, files: list[tuple[str, str]]) -> None:
    """Whole files of the hour, not read: one quarantine row each (an unreadable_file reason)."""
    for path, error in files:
        conn.execute(
            "INSERT INTO quarantine VALUES ($hour, $file, NULL, $reason, NULL, now()::TIMESTAMP)",
            {"hour": hour, "file": path, "reason": f"unreadable_file: {error}"},
        )


def _staged_lines(conn: duckdb.DuckDBPyConnection) -> dict[datetime, int]:
    return dict(conn.execute("SELECT hour, count(*) FROM _staged GROUP BY ALL").fetchall())
