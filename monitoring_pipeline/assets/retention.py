"""storage_retention: drops old prompt/response text and old quarantine rows, then compacts the file."""

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg

from monitoring_pipeline.resources import DuckDBWarehouse, MonitoringSettings, remove_database, transaction


class RetentionRun(dg.Config):
    as_of: str = ""  # ISO timestamp the ages count from (UTC); empty: now


def _table_exists(conn, name: str) -> bool:
    return bool(conn.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = $t AND NOT temporary",
                             {"t": name}).fetchone()[0])


def compact(warehouse: DuckDBWarehouse) -> tuple[int, int]:
    """Rewrite the database into a new file and swap it in: DuckDB reuses freed blocks but never
    gives them back to the disk (CHECKPOINT alone does not shrink the file). Returns sizes before
    and after. Runs while holding the pool's one slot, so no run writes meanwhile; a reader that
    has the old file open keeps reading the old copy until it reconnects."""
    path = Path(warehouse.path)
    before = path.stat().st_size
    fresh = path.with_name(path.name + ".compact")
    remove_database(fresh)
    with warehouse.get_connection() as conn:
        conn.execute("CHECKPOINT")
        source = conn.execute("SELECT current_database()").fetchone()[0]
        conn.execute(f"ATTACH '{_quote(str(fresh))}' AS compacted")  # ATTACH takes no parameters
        conn.execute(f'COPY FROM DATABASE "{source}" TO compacted')
        conn.execute("DETACH compacted")
    os.replace(fresh, path)
    return before, path.stat().st_size


def _quote(s: str) -> str:
    return s.replace("'", "''")


@dg.asset(pool="duckdb", group_name="maintenance", kinds={"duckdb"})
def storage_retention(context: dg.AssetExecutionContext, config: RetentionRun, warehouse: DuckDBWarehouse,
                      settings: MonitoringSettings) -> dg.MaterializeResult:
    """Nulls prompt/response older than retention.text_days, prunes quarantine older than quarantine_days, compacts."""
    retention = settings.load().retention
    as_of = datetime.fromisoformat(config.as_of) if config.as_of else datetime.now(timezone.utc)
    as_of = as_of.astimezone(timezone.utc).replace(tzinfo=None) if as_of.tzinfo else as_of
    text_cutoff = as_of - timedelta(days=retention.text_days)
    quarantine_cutoff = as_of - timedelta(days=retention.quarantine_days)
    texts_dropped = quarantine_pruned = requests = 0
    with warehouse.get_connection() as conn:
        with transaction(conn):
            if _table_exists(conn, "llm_requests"):
                texts_dropped = conn.execute(
                    "UPDATE llm_requests SET prompt = NULL, response = NULL"
                    " WHERE hour < $cutoff AND (prompt IS NOT NULL OR response IS NOT NULL)",
                    {"cutoff": text_cutoff}).fetchone()[0]
                requests = conn.execute("SELECT count(*) FROM llm_requests").fetchone()[0]
            if _table_exists(conn, "quarantine"):
                quarantine_pruned = conn.execute("DELETE FROM quarantine WHERE hour < $cutoff",
                                                 {"cutoff": quarantine_cutoff}).fetchone()[0]
    size = before = Path(warehouse.path).stat().st_size if Path(warehouse.path).exists() else 0
    if retention.compact and before:
        before, size = compact(warehouse)
    context.log.info(f"Dropped text of {texts_dropped} requests before {text_cutoff:%Y-%m-%d %H:00}, pruned "
                     f"{quarantine_pruned} quarantine rows before {quarantine_cutoff:%Y-%m-%d %H:00}; "
                     f"file {before:,} -> {size:,} bytes")
    return dg.MaterializeResult(metadata={
        "texts_dropped": texts_dropped,
        "quarantine_pruned": quarantine_pruned,
        "text_cutoff": text_cutoff.isoformat(),
        "quarantine_cutoff": quarantine_cutoff.isoformat(),
        "file_bytes_before": before,
        "file_bytes_after": size,
        "bytes_per_request": size / requests if requests else 0.0,
    })
