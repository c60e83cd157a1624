"""llm_logs: the app's raw log files, the source of everything downstream (not materialized here)."""

import dagster as dg

llm_logs = dg.AssetSpec(
    "llm_logs",
    group_name="ingest",
    kinds={"jsonl"},
    description=(
        "The app's hourly JSONL log files (one line per model call), written by the app, read by "
        "ingest; Dagster never writes them."
    ),
    metadata={
        "location": dg.MetadataValue.text("$MONITORING_LOG_DIR/dt=YYYY-MM-DD/hour=HH/*.jsonl[.gz] (default data/logs)"),
        "contract": dg.MetadataValue.text("README.md, section 'The log contract' (monitoring_pipeline/contract.py)"),
    },
)
