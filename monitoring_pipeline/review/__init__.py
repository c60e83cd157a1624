"""The human review loop: stratified sampling, redaction, reviewer files, verdict ingestion."""
