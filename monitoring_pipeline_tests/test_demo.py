"""`monitoring-pipeline demo`: a day of sample logs, every hour run, incidents found and alerted;
run again on the same day from another process, it replaces the day instead of failing."""

import json
import subprocess
import sys

import pytest

from monitoring_pipeline.cli import main

pytestmark = pytest.mark.slow


def test_demo_finds_each_injected_incident_and_alerts_then_a_rerun_replaces_the_day(tmp_path, monkeypatch, capsys):
    """One test for both, since each demo run costs about a minute: the second run is the re-run
    the first test's day needed anyway."""
    monkeypatch.chdir(tmp_path)  # the demo writes under data/ by default
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("MONITORING_REVIEW_SALT", "test-salt")  # the demo would set one for the process
    assert main(["demo", "--day", "2026-03-01", "--volume", "400"]) == 0
    out = capsys.readouterr().out
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

    # The demo rewrites the day's logs under new file names (its process id is in them); its
    # re-runs replace the old rows instead of failing on the files that are gone.
    again = subprocess.run(  # another process: other file names
        [
            sys.executable,
            "-c",
            "import sys; from monitoring_pipeline.cli import main; raise SystemExit(main(sys.argv[1:]))",
        ]
        + ["demo", "--day", "2026-03-01", "--volume", "20"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert "FAILED" not in again.stdout
