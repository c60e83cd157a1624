"""DuckDB helpers every domain uses: one transaction, quoting where SQL takes no parameters,
table existence, fetching rows as dicts, and removing a database file."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """One DuckDB transaction: committed when the block ends, rolled back if it raises."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def quote_literal(text: str) -> str:
    """A SQL string literal, for the few statements that take no parameters (ATTACH, SET)."""
    return "'" + text.replace("'", "''") + "'"


def table_exists(conn: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        one(conn, "SELECT count(*) FROM duckdb_tables() WHERE table_name = $t AND NOT temporary", {"t": name})[0]
    )


def fetch_dicts(conn: duckdb.DuckDBPyConnection, query: str, params: dict | None = None) -> list[dict]:
    cursor = conn.execute(query, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def remove_database(path: Path) -> None:
    """Delete a DuckDB file and its write-ahead log, where they exist."""
    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)


def one(conn: duckdb.DuckDBPyConnection, query: str, params: dict | None = None) -> tuple:
    """The single row an aggregate query returns."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise LookupError(f"no row from: {query.strip()[:200]}")
    return row
