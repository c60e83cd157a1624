"""The real webserver: `dagster dev` from the repo root serves the code location over GraphQL."""

import os
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from monitoring_pipeline_tests.dagster_dev import dagster_dev as start_dagster_dev
from monitoring_pipeline_tests.dagster_dev import graphql

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
QUERY = """
{
  assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name } } } }
  repositoriesOrError { ... on RepositoryConnection { nodes {
    jobs { name } schedules { name } sensors { name } } } }
}
"""


@pytest.fixture
def dagster_dev(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    # Telemetry off, as in the repo's dagster.yaml: a test should not try to upload usage logs.
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    # The daemon runs the sensors: every path they write goes to tmp_path, none into the repo.
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "review": {"output_dir": str(tmp_path / "review"), "inbox_dir": str(tmp_path / "inbox")},
                "alerts": {"dry_run_file": str(tmp_path / "dry_run.jsonl")},
            }
        )
    )
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MONITORING_DUCKDB_PATH": str(tmp_path / "m.duckdb"),
        "MONITORING_ALERTS_DB": str(tmp_path / "a.duckdb"),
        "MONITORING_LOG_DIR": str(tmp_path / "logs"),
        "MONITORING_CONFIG": str(config),
    }
    with start_dagster_dev([], REPO, env, tmp_path / "dagster_dev.log") as (port, proc):
        yield port, proc, tmp_path / "dagster_dev.log"


def test_webserver_serves_assets_checks_job_schedule_and_sensor(dagster_dev):
    port, proc, log = dagster_dev
    data = graphql(port, QUERY)
    assets = {
        "/".join(n["assetKey"]["path"]): {c["name"] for c in n["assetChecksOrError"].get("checks", [])}
        for n in data["assetNodes"]
    }
    assert {"llm_requests", "hourly_metrics", "hourly_model_metrics", "review_sample"} <= set(assets)
    assert assets["hourly_metrics"] >= {
        "latency_p99",
        "latency_avg",
        "error_rate",
        "token_budget",
        "feedback_score",
        "safety_violations",
    }
    assert "quarantine_rate" in assets["llm_requests"]
    (repo,) = data["repositoriesOrError"]["nodes"]
    assert "hourly_monitoring" in {j["name"] for j in repo["jobs"]}
    assert "hourly_monitoring_schedule" in {s["name"] for s in repo["schedules"]}
    assert "slack_alert_sensor" in {s["name"] for s in repo["sensors"]}
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        assert proc.wait(timeout=60) == 0  # stops cleanly on SIGTERM
    except subprocess.TimeoutExpired:
        pytest.fail("dagster dev did not stop within 60 s of SIGTERM:\n" + log.read_text()[-5000:])
