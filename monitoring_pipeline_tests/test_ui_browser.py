"""The alert's link in a real browser: `dagster dev` serving two demo hours, Chromium rendering the
page an alert links to, and the page showing that hour's figures (not the latest hour's)."""

import os
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from monitoring_pipeline_tests.dagster_dev import dagster_dev

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DAY = datetime(2026, 3, 1, tzinfo=timezone.utc)
HOURS = ("2026-03-01-06:00", "2026-03-01-07:00")  # 06:00 has the demo's latency spike; 07:00 is the newest


def _dump_dom(url: str, expect: str) -> str:
    """The page as rendered, once it shows `expect`: a freshly started webserver answers its first
    queries slowly, and Chromium's virtual time budget may run out before the data arrives."""
    for _ in range(4):
        dom = _render(url)
        if expect in dom:
            break
    return dom


def _render(url: str) -> str:
    return subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1600,1000",
         "--virtual-time-budget=20000", "--dump-dom", url],
        capture_output=True, text=True, timeout=180, check=True,
    ).stdout  # fmt: skip


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
def test_ui_alert_link_lands_on_the_hour(tmp_path, monkeypatch):
    from monitoring_pipeline.definitions import defs
    from monitoring_pipeline.tools.demo import write_sample_logs

    home = tmp_path / "home"
    (home / ".nux").mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    (home / ".nux" / "nux.yaml").write_text("seen: 1\n")  # no "join the community" dialog over the page
    (tmp_path / "config.yaml").write_text(f"review:\n  output_dir: {tmp_path / 'review'}\n")
    env = {
        "DAGSTER_HOME": str(home),
        "MONITORING_DUCKDB_PATH": str(tmp_path / "m.duckdb"),
        "MONITORING_ALERTS_DB": str(tmp_path / "a.duckdb"),
        "MONITORING_LOG_DIR": str(tmp_path / "logs"),
        "MONITORING_CONFIG": str(tmp_path / "config.yaml"),
        "MONITORING_REVIEW_SALT": "test-salt",
        "MONITORING_PARTITIONS_START": "2026-03-01",  # what the demo's .env sets
        "MONITORING_PARTITIONS_END": "2026-03-02",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
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
    with duckdb.connect(env["MONITORING_DUCKDB_PATH"], read_only=True) as conn:
        p99 = dict(
            conn.execute(
                "SELECT strftime(hour, '%Y-%m-%d-%H:00'), round(latency_p99_ms, 1) FROM hourly_metrics"
            ).fetchall()
        )

    # cwd not the repo: dagster dev would load a demo's .env there, over this env
    args = ["-m", "monitoring_pipeline.definitions"]
    with dagster_dev(args, tmp_path, {**os.environ, **env}, tmp_path / "dagster_dev.log") as (port, _):
        dom = _dump_dom(
            f"http://127.0.0.1:{port}/assets/hourly_metrics?view=partitions&partition={HOURS[0]}", "threshold/"
        )
        (tmp_path / "hour.html").write_text(dom)
        assert HOURS[0] in dom and "threshold/latency_p99_ms" in dom
        shown, latest = f"{p99[HOURS[0]]:g}", f"{p99[HOURS[1]]:g}"
        assert shown in dom and latest not in dom, (shown, latest)  # the linked hour, not the latest one
        dom = _dump_dom(f"http://127.0.0.1:{port}/assets/hourly_metrics?view=checks&checkDetail=latency_p99", "(n=")
        # The check's page: what it judges, and its latest evaluation's one line of what happened.
        assert "p99 latency above the threshold" in dom and "all traffic" in dom and "(n=" in dom
