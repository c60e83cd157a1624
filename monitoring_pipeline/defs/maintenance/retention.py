"""storage_retention: drops old prompt/response text and old quarantine rows, then compacts the file."""

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg

from monitoring_pipeline.lib.db import one, quote_literal, remove_database, table_exists, transaction
from monitoring_pipeline.resources import DuckDBWarehouse, MonitoringSettings


class RetentionRun(dg.Config):
    as_of: str = ""  # ISO timestamp the ages count from (UTC); empty: now


def compact(warehouse: DuckDBWarehouse) -> tuple[int, int]:
    """Rewrite the database into a new file and swap it in: DuckDB reuses freed blocks but never
    gives them back to the disk (CHECKPOINT alone does not shrink the file). Returns sizes before
    and after. The swap happens while this connection still holds the file's lock, so a writer
    outside the pool (an on-call command, a script) cannot write into the old file between the
    copy and the swap: it waits for the lock and then opens the compacted file."""
    path = Path(warehouse.path)
    before = path.stat().st_size
    fresh = path.with_name(path.name + ".compact")
    remove_database(fresh)
    with warehouse.get_connection() as conn:
        conn.execute("CHECKPOINT")  # everything in the file, nothing left in the write-ahead log
        source = one(conn, "SELECT current_database()")[0]
        conn.execute(f"ATTACH {quote_literal(str(fresh))} AS compacted")  # ATTACH takes no parameters
        conn.execute(f'COPY FROM DATABASE "{source}" TO compacted')
        conn.execute("DETACH compacted")
        os.replace(fresh, path)
    return before, path.stat().st_size


@dg.asset(pool="duckdb", group_name="maintenance", kinds={"duckdb"})
def storage_retention(
    context: dg.AssetExecutionContext, config: RetentionRun, warehouse: DuckDBWarehouse, settings: MonitoringSettings
) -> dg.MaterializeResult:
    """Nulls prompt/response older than retention.text_days, prunes quarantine older than quarantine_days, compacts."""
    retention = settings.load().retention
    as_of = datetime.fromisoformat(config.as_of) if config.as_of else datetime.now(timezone.utc)
    as_of = as_of.astimezone(timezone.utc).replace(tzinfo=None) if as_of.tzinfo else as_of
    text_cutoff = as_of - timedelta(days=retention.text_days)
    quarantine_cutoff = as_of - timedelta(days=retention.quarantine_days)
    texts_dropped = quarantine_pruned = requests = 0
    with warehouse.get_connection() as conn, transaction(conn):
        if table_exists(conn, "llm_requests"):
            texts_dropped = one(
                conn,
                "UPDATE llm_requests SET prompt = NULL, response = NULL"
                " WHERE hour < $cutoff AND (prompt IS NOT NULL OR response IS NOT NULL)",
                {"cutoff": text_cutoff},
            )[0]
            requests = one(conn, "SELECT count(*) FROM llm_requests")[0]
        if table_exists(conn, "quarantine"):
            quarantine_pruned = one(conn, "DELETE FROM quarantine WHERE hour < $cutoff", {"cutoff": quarantine_cutoff})[
                0
            ]
    size = before = Path(warehouse.path).stat().st_size if Path(warehouse.path).exists() else 0
    if retention.compact and before:
        before, size = compact(warehouse)
    context.log.info(
        f"Dropped text of {texts_dropped} requests before {text_cutoff:%Y-%m-%d %H:00}, pruned "
        f"{quarantine_pruned} quarantine rows before {quarantine_cutoff:%Y-%m-%d %H:00}; "
        f"file {before:,} -> {size:,} bytes"
    )
    return dg.MaterializeResult(
        metadata={
            "texts_dropped": texts_dropped,
            "quarantine_pruned": quarantine_pruned,
            "text_cutoff": text_cutoff.isoformat(),
            "quarantine_cutoff": quarantine_cutoff.isoformat(),
            "file_bytes_before": before,
            "file_bytes_after": size,
            "bytes_per_request": size / requests if requests else 0.0,
        }
    )


storage_retention_job = dg.define_asset_job(
    "storage_retention_job",
    selection=[storage_retention],
    description="Drop old prompt/response text and quarantine rows per `retention:`, then compact the warehouse.",
)

# Daily, away from the hourly runs' minute; it takes the DuckDB pool's slot like any writer.
storage_retention_schedule = dg.ScheduleDefinition(
    name="storage_retention_schedule",
    job=storage_retention_job,
    cron_schedule="40 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
