"""`monitoring-pipeline demo`: a day of sample logs, every hour run, incidents found and alerted;
run on a day already ingested from other log files (another process's), it replaces the day
instead of failing."""

import json
import os
import subprocess
import sys
from datetime import datetime, timezone

import dagster as dg
import pytest

from monitoring_pipeline_tests.conftest import read_rows

pytestmark = pytest.mark.slow

DAY = datetime(2026, 3, 1, tzinfo=timezone.utc)


def _ingest_the_day_from_files_of_this_process(tmp_path) -> str:
    """The day as an earlier demo would leave it: its logs written under this process's file names
    and every hour run, in one ranged run (a second; 24 hourly runs would take a minute). Returns
    the file name the rows came from."""
    from monitoring_pipeline.definitions import defs
    from monitoring_pipeline.tools.demo import write_sample_logs

    write_sample_logs(tmp_path / "data/logs", DAY, volume_per_hour=20)
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("hourly_monitoring").execute_in_process(
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": f"{DAY:%Y-%m-%d}-00:00",
                "dagster/asset_partition_range_end": f"{DAY:%Y-%m-%d}-23:00",
            },
        )
    assert result.success
    return f"demo-{os.getpid()}.jsonl"


def test_demo_finds_each_injected_incident_and_alerts_and_replaces_a_day_read_from_other_files(tmp_path, monkeypatch):
    """The demo runs in a process of its own, as `make demo` does: it rewrites the day's logs under
    its own file names (its process id is in them), so the hours' earlier files are gone, and its
    runs replace their rows instead of failing."""
    monkeypatch.chdir(tmp_path)  # the demo writes under data/ by default
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("MONITORING_REVIEW_SALT", "test-salt")  # the demo would set one for the process
    old_file = _ingest_the_day_from_files_of_this_process(tmp_path)
    old_rows = read_rows(tmp_path / "data/monitoring.duckdb", "SELECT count(*) FROM llm_requests")[0][0]
    assert old_rows > 24 * 10

    demo = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from monitoring_pipeline.cli import main; raise SystemExit(main(sys.argv[1:]))",
        ]
        + ["demo", "--day", f"{DAY:%Y-%m-%d}", "--volume", "400"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert "PreviewWarning" not in demo.stderr and "BetaWarning" not in demo.stderr  # features used on purpose
    out = demo.stdout
    assert "FAILED" not in out
    rows = {line[11:13]: line for line in out.splitlines() if line.startswith("2026-03-01 ")}
    assert len(rows) == 24
    assert "quarantine_rate" in rows["03"]
    assert "latency_p99" in rows["06"] and "latency_avg" in rows["06"]
    assert "error_rate" in rows["11"]
    assert "safety_violations(CRITICAL)" in rows["15"]
    assert "feedback_score" in rows["19"]
    quiet = [h for h, line in rows.items() if h not in ("03", "06", "11", "15", "19")]
    assert all(rows[h].split()[-1] == "-" for h in quiet), [rows[h] for h in quiet if rows[h].split()[-1] != "-"]
    alerts = [json.loads(line) for line in (tmp_path / "data/alerts/dry_run.jsonl").read_text().splitlines()]
    assert any("safety_violations" in a["text"] and "CRITICAL" in a["text"] for a in alerts)
    assert "make dev" in out
    env = (tmp_path / ".env").read_text()  # what `dagster dev` started here loads: the demo's day only
    assert "MONITORING_PARTITIONS_START=2026-03-01\n" in env and "MONITORING_PARTITIONS_END=2026-03-02\n" in env

    # The earlier rows are replaced, not added to: every row now comes from the demo's files, and
    # the table holds as many as the demo's summary counts.
    by_file = read_rows(
        tmp_path / "data/monitoring.duckdb",
        "SELECT parse_filename(source_file) LIKE 'demo-%.jsonl' AND parse_filename(source_file) != $old, count(*)"
        " FROM llm_requests GROUP BY ALL",
        {"old": old_file},
    )
    assert by_file == [(True, sum(int(line.split()[2]) for line in rows.values()))]
