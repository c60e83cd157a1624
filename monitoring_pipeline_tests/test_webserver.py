"""The real webserver: `dagster dev`, started as `make dev` starts it (no arguments, beside the repo's
workspace.yaml and pyproject.toml), serves the code location over GraphQL; with Chromium, the page an
alert links to shows that hour's figures (not the latest hour's); and it stops cleanly on SIGTERM.

One `dagster dev` for all of it: starting one (webserver, daemon, code server) costs 15-20 s."""

import os
import shutil
import signal
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from monitoring_pipeline_tests.dagster_dev import dagster_dev, graphql

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DAY = datetime(2026, 3, 1, tzinfo=timezone.utc)
HOURS = ("2026-03-01-06:00", "2026-03-01-07:00")  # 06:00 has the demo's latency spike; 07:00 is the newest
QUERY = """
{
  assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name } } } }
  repositoriesOrError { ... on RepositoryConnection { nodes {
    jobs { name } schedules { name } sensors { name } } } }
}
"""


def _dump_dom(url: str, expect: str) -> str:
    """The page as rendered, once it shows `expect`: a freshly started webserver answers its first
    queries slowly, and Chromium's virtual time budget may run out before the data arrives. The
    budget is 5 s: the page shows its data within 3 s of virtual time (pending requests stop the
    clock), and every virtual second past it costs real CPU (the UI's polling timers keep firing)."""
    for _ in range(4):
        dom = _render(url)
        if expect in dom:
            break
    return dom


def _render(url: str) -> str:
    return subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1600,1000",
         "--virtual-time-budget=5000", "--dump-dom", url],
        capture_output=True, text=True, timeout=180, check=True,
    ).stdout  # fmt: skip


def _environment(tmp_path: Path) -> dict:
    """DAGSTER_HOME with the repo's dagster.yaml, and every path the pipeline and the daemon's
    sensors write in tmp_path, none in the repo."""
    home = tmp_path / "home"
    (home / ".nux").mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    (home / ".nux" / "nux.yaml").write_text("seen: 1\n")  # no "join the community" dialog over the page
    config = {
        "review": {"output_dir": str(tmp_path / "review"), "inbox_dir": str(tmp_path / "inbox")},
        "alerts": {"dry_run_file": str(tmp_path / "dry_run.jsonl")},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return {
        "DAGSTER_HOME": str(home),
        "MONITORING_DUCKDB_PATH": str(tmp_path / "m.duckdb"),
        "MONITORING_ALERTS_DB": str(tmp_path / "a.duckdb"),
        "MONITORING_LOG_DIR": str(tmp_path / "logs"),
        "MONITORING_CONFIG": str(tmp_path / "config.yaml"),
        "MONITORING_REVIEW_SALT": "test-salt",
        "MONITORING_PARTITIONS_START": "2026-03-01",  # what the demo's .env sets
        "MONITORING_PARTITIONS_END": "2026-03-02",
    }


def _materialize_demo_hours(tmp_path: Path) -> dict[str, float]:
    """Two demo hours run on the instance dagster dev shows; each hour's p99 as the warehouse has it."""
    from monitoring_pipeline.definitions import defs
    from monitoring_pipeline.tools.demo import write_sample_logs

    write_sample_logs(tmp_path / "logs", DAY, volume_per_hour=200)
    instance = dg.DagsterInstance.get()
    try:
        for key in HOURS:
            assert (
                defs.resolve_job_def("hourly_monitoring")
                .execute_in_process(partition_key=key, instance=instance)
                .success
            )
    finally:
        instance.dispose()
    with duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True) as conn:
        return dict(
            conn.execute(
                "SELECT strftime(hour, '%Y-%m-%d-%H:00'), round(latency_p99_ms, 1) FROM hourly_metrics"
            ).fetchall()
        )


def _assert_serves_assets_checks_job_schedule_and_sensor(port: int) -> None:
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


def _assert_alert_link_lands_on_the_hour(port: int, p99: dict[str, float], tmp_path: Path) -> None:
    dom = _dump_dom(f"http://127.0.0.1:{port}/assets/hourly_metrics?view=partitions&partition={HOURS[0]}", "threshold/")
    (tmp_path / "hour.html").write_text(dom)
    assert HOURS[0] in dom and "threshold/latency_p99_ms" in dom
    shown, latest = f"{p99[HOURS[0]]:g}", f"{p99[HOURS[1]]:g}"
    assert shown in dom and latest not in dom, (shown, latest)  # the linked hour, not the latest one
    dom = _dump_dom(f"http://127.0.0.1:{port}/assets/hourly_metrics?view=checks&checkDetail=latency_p99", "(n=")
    # The check's page: what it judges, and its latest evaluation's one line of what happened.
    assert "p99 latency above the threshold" in dom and "all traffic" in dom and "(n=" in dom


def test_webserver_serves_the_code_location_the_alert_link_lands_on_the_hour_and_it_stops(tmp_path, monkeypatch):
    env = _environment(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    p99 = _materialize_demo_hours(tmp_path) if CHROMIUM else {}
    # `make dev`'s working directory, but not the repo itself: dagster dev loads a `.env` from its
    # working directory over the environment, and a demo run in the repo leaves one there.
    cwd = tmp_path / "repo"
    cwd.mkdir()
    for name in ("workspace.yaml", "pyproject.toml"):
        shutil.copy(REPO / name, cwd / name)
    log = tmp_path / "dagster_dev.log"
    with dagster_dev([], cwd, {**os.environ, **env}, log) as (port, proc):
        _assert_serves_assets_checks_job_schedule_and_sensor(port)
        if CHROMIUM:
            _assert_alert_link_lands_on_the_hour(port, p99, tmp_path)
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            assert proc.wait(timeout=60) == 0  # stops cleanly on SIGTERM
        except subprocess.TimeoutExpired:
            pytest.fail("dagster dev did not stop within 60 s of SIGTERM:\n" + log.read_text()[-5000:])
    if not CHROMIUM:
        pytest.skip("served and stopped; the alert link's page needs chromium (apt-get install chromium)")
