"""What ingest checks about the hour's files before it trusts DuckDB's reading of them: which
files the hour's rows came from that are gone now, and lines too long for DuckDB's line reader."""

import gzip
from datetime import datetime
from pathlib import Path

import dagster as dg
import duckdb

from monitoring_pipeline.defs.ingest.sql import FILES_GONE, READ_BUFFER_BYTES

LOG_FINGERPRINT = "log_fingerprint"  # llm_requests metadata: the fingerprint of the files the run listed
_BLOCK = 1 << 20


def files_gone(conn: duckdb.DuckDBPyConnection, window: dict) -> dict[datetime, dict[str, int]]:
    """Per hour of the window, the files (by name) its llm_requests and quarantine rows came from
    that are not listed in its folder now (sql.LISTING), with their row counts."""
    gone: dict[datetime, dict[str, int]] = {}
    for hour, name, rows in conn.execute(FILES_GONE, window).fetchall():
        gone.setdefault(hour, {})[name] = rows
    return gone


def overlong_lines(path: str, limit: int) -> list[tuple[int, int]]:
    """(line number, bytes) of the file's lines longer than `limit`, counted in 1 MB blocks:
    a line that long spans blocks without a newline, so only block edges are looked at."""
    found, newlines, line_start, offset = [], 0, 0, 0
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        while block := f.read(_BLOCK):
            first = block.find(b"\n")
            if first >= 0:
                if offset + first - line_start > limit:
                    found.append((newlines + 1, offset + first - line_start))
                newlines += block.count(b"\n")
                line_start = offset + block.rfind(b"\n") + 1
            offset += len(block)
    if offset - line_start > limit:  # the last line, without a newline
        found.append((newlines + 1, offset - line_start))
    return found


def check_line_lengths(files: list[str]) -> None:
    """Raise if a file has a line longer than DuckDB's CSV buffer: its reader drops such a line
    without a trace (shorter overlong lines it reports, and they are quarantined as
    unreadable_line:line_size_over_maximum). Only files larger than the buffer can hold one;
    files in an object store are not checked."""
    for path in files:
        if "://" in path:
            continue
        try:
            if Path(path).stat().st_size <= READ_BUFFER_BYTES and not path.endswith(".gz"):
                continue
            lines = overlong_lines(path, READ_BUFFER_BYTES)
        except (OSError, EOFError, gzip.BadGzipFile):  # DuckDB reports the unreadable file itself
            continue
        if lines:
            where = ", ".join(f"line {n} ({size / 2**20:.0f} MB)" for n, size in lines[:10])
            raise dg.Failure(
                description=f"{path} has lines longer than the {READ_BUFFER_BYTES >> 20} MB DuckDB reads: {where}. "
                "Nothing was changed; split or remove those lines and re-run the hour.",
                metadata={"file": path, "overlong_lines": [n for n, _ in lines]},
            )
