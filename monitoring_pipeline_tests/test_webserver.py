"""`make dev` end to end: `dagster dev`, started as `make dev` starts it (no arguments, beside the
repo's workspace.yaml and pyproject.toml, with the repo's dagster.yaml), serves the code location
over GraphQL; a backfill launched as the UI launches one (the launchPartitionBackfill mutation on
hourly_monitoring, over the webserver's GraphQL) is run by its daemon in ranges of hours, every
hour ending up in every table and every hourly asset's partitions, and the alerts say one thing:
that the backfill is done; with Chromium, the page an alert links to shows that hour's figures (not
the latest hour's); and it stops cleanly on SIGTERM.

One `dagster dev` for all of it: each costs 15-20 s to start and ~30 s of CPU while it runs.
The 28-day backfill is `monitoring-pipeline bench-backfill --days 28`."""

import json
import os
import shutil
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from monitoring_pipeline.definitions import defs
from monitoring_pipeline.defs.alerts.sensors import slack_alert_sensor
from monitoring_pipeline.tools.bench_backfill import await_backfill, hours_in_tables, prepare
from monitoring_pipeline_tests.dagster_dev import dagster_dev, graphql

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
QUERY = """
{
  assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name } } } }
  repositoriesOrError { ... on RepositoryConnection { nodes {
    jobs { name } schedules { name } sensors { name } } } }
}
"""
LAUNCH_BACKFILL = """
mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }
"""
HOURS = 6  # from 04:00, in runs of at most 4 hours: 04-07 and 08-09


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


def _environment(tmp_path: Path, first_day: datetime) -> dict:
    """bench-backfill's setup (a DAGSTER_HOME with the repo's dagster.yaml, a day of demo logs, every
    path the pipeline and the daemon's sensors write in tmp_path), in runs of at most 4 hours."""
    setup = prepare(tmp_path, first_day, days=1, volume=20)
    (setup["home"] / ".nux").mkdir()
    (setup["home"] / ".nux" / "nux.yaml").write_text("seen: 1\n")  # no "join the community" dialog over the page
    return {
        **setup["env"],
        "MONITORING_BACKFILL_HOURS_PER_RUN": "4",  # a week per run by default
        "MONITORING_REVIEW_SALT": "test-salt",
    }


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


def _backfill_like_the_ui(port: int, keys: list[str]) -> None:
    params = {
        "selector": {
            "partitionSetName": "hourly_monitoring_partition_set",
            "repositorySelector": {"repositoryLocationName": "monitoring_pipeline", "repositoryName": "__repository__"},
        },
        "partitionNames": keys,
    }
    launched = graphql(port, LAUNCH_BACKFILL, {"p": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched


def _assert_ranged_runs_fill_every_hour(result: dict, keys: list[str], tmp_path: Path, first: datetime) -> None:
    assert result["runs"] == 2  # 4 hours + 2 hours, not 6 runs
    assert result["hours_per_run"] == 4
    assert result["failed_runs"] == []
    assert result["lock_errors"] == 0
    assert result["partitions_materialized"] == HOURS
    assert {keys[0], keys[3], keys[4], keys[5]} <= result["evaluated_hours"]  # each run's first and last hour
    with duckdb.connect(str(tmp_path / "monitoring.duckdb"), read_only=True) as conn:
        assert hours_in_tables(conn, first, HOURS) == HOURS


def _assert_one_summary_and_no_page(env: dict, tmp_path: Path, monkeypatch) -> None:
    with monkeypatch.context() as patch:
        for name, value in env.items():
            if name.startswith("MONITORING_") or name == "DAGSTER_HOME":
                patch.setenv(name, value)
        patch.chdir(env["DAGSTER_HOME"])  # its dagster.yaml has paths relative to it
        with dg.DagsterInstance.get() as instance:  # a last tick, in case the daemon's came before the end
            slack_alert_sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources=defs.resources))
    alerts = [json.loads(line)["text"] for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    summaries = [text for text in alerts if text.startswith("Backfill ")]
    assert len(summaries) == 1 and f" of {HOURS} hour(s) done: " in summaries[0], alerts
    assert not [text for text in alerts if text.startswith(("Monitoring", "<!here>"))], alerts


def _assert_alert_link_lands_on_the_hour(port: int, tmp_path: Path, shown: str, latest: str) -> None:
    with duckdb.connect(str(tmp_path / "monitoring.duckdb"), read_only=True) as conn:
        p99 = dict(
            conn.execute(
                "SELECT strftime(hour, '%Y-%m-%d-%H:00'), round(latency_p99_ms, 1) FROM hourly_metrics"
            ).fetchall()
        )
    dom = _dump_dom(f"http://127.0.0.1:{port}/assets/hourly_metrics?view=partitions&partition={shown}", "threshold/")
    (tmp_path / "hour.html").write_text(dom)
    assert shown in dom and "threshold/latency_p99_ms" in dom
    assert f"{p99[shown]:g}" in dom and f"{p99[latest]:g}" not in dom, (p99[shown], p99[latest])  # not the latest
    dom = _dump_dom(f"http://127.0.0.1:{port}/assets/hourly_metrics?view=checks&checkDetail=latency_p99", "(n=")
    # The check's page: what it judges, and its latest evaluation's one line of what happened.
    assert "p99 latency above the threshold" in dom and "all traffic" in dom and "(n=" in dom


def test_dagster_dev_serves_the_code_backfills_in_ranged_runs_the_alert_link_lands_on_the_hour_and_it_stops(
    tmp_path, monkeypatch
):
    # Days old: the backfill's hours are history, whose alerts are a summary, never a page.
    day = (datetime.now(timezone.utc) - timedelta(days=4)).replace(hour=0, minute=0, second=0, microsecond=0)
    first = day + timedelta(hours=4)  # 06:00 has the demo's latency spike; 09:00 is the newest
    keys = [f"{first + timedelta(hours=h):%Y-%m-%d-%H:00}" for h in range(HOURS)]
    env = _environment(tmp_path, day)
    # `make dev`'s working directory, but not the repo itself: dagster dev loads a `.env` from its
    # working directory over the environment, and a demo run in the repo leaves one there.
    cwd = tmp_path / "repo"
    cwd.mkdir()
    for name in ("workspace.yaml", "pyproject.toml"):
        shutil.copy(REPO / name, cwd / name)
    log = tmp_path / "dagster_dev.log"
    with dagster_dev([], cwd, env, log) as (port, proc):
        _assert_serves_assets_checks_job_schedule_and_sensor(port)
        started = time.monotonic()
        _backfill_like_the_ui(port, keys)

        def dagster_dev_gone() -> str | None:
            return None if proc.poll() is None else "dagster dev exited:\n" + log.read_text()[-3000:]

        result = await_backfill(Path(env["DAGSTER_HOME"]), first, HOURS, started, 600, dagster_dev_gone)
        _assert_ranged_runs_fill_every_hour(result, keys, tmp_path, first)
        _assert_one_summary_and_no_page(env, tmp_path, monkeypatch)
        if CHROMIUM:
            _assert_alert_link_lands_on_the_hour(port, tmp_path, shown=keys[2], latest=keys[-1])
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            assert proc.wait(timeout=60) == 0  # stops cleanly on SIGTERM
        except subprocess.TimeoutExpired:
            pytest.fail("dagster dev did not stop within 60 s of SIGTERM:\n" + log.read_text()[-5000:])
    if not CHROMIUM:
        pytest.skip("served, backfilled and stopped; the alert link's page needs chromium (apt-get install chromium)")
