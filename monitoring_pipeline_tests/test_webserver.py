"""The real webserver: `dagster dev` from the repo root serves the code location over GraphQL."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
QUERY = """
{
  assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name } } } }
  repositoriesOrError { ... on RepositoryConnection { nodes {
    jobs { name } schedules { name } sensors { name } } } }
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["data"]


@pytest.fixture
def dagster_dev(tmp_path):
    port = _free_port()
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
    dagster = Path(sys.executable).with_name("dagster")
    log = tmp_path / "dagster_dev.log"  # a file, not a pipe: nobody reads a pipe until the end, and a full one blocks
    with log.open("w") as out:
        # SIGINT back to its default: a shell's background job ignores it, the children inherit that,
        # and dagster dev then never stops on SIGTERM (it shuts its services down by interrupt).
        proc = subprocess.Popen(
            [str(dagster), "dev", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                data = _graphql(port, QUERY)
                if data["assetNodes"]:
                    break
            except OSError:
                pass
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "dagster dev did not serve the code location in time"
            time.sleep(1)
        yield port, proc, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                raise


def test_webserver_serves_assets_checks_job_schedule_and_sensor(dagster_dev):
    port, proc, log = dagster_dev
    data = _graphql(port, QUERY)
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
