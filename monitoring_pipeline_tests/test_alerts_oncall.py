"""What on-call sees and when: links that open the hour an alert is about, old hours that do not
page, a cursor that follows the instance, runs tagged with their failed checks, and the
alert_incidents asset. Real runs on real instances and the real sensor."""

from datetime import timedelta

from monitoring_pipeline.defs.alerts.messages import asset_link, run_link
from monitoring_pipeline.defs.ingest.missing_logs import missing_logs_sensor
from monitoring_pipeline_tests.conftest import HOUR
from monitoring_pipeline_tests.test_alerts import hour_with, tick

URL = "http://dagster.example:3000/"


def test_asset_link_selects_the_hour_in_the_partitions_view():
    assert (
        asset_link(URL, "llm_requests", "2026-11-29-03:00")
        == "http://dagster.example:3000/assets/llm_requests?view=partitions&partition=2026-11-29-03%3A00"
    )
    assert asset_link(URL, "human_quality", None) == "http://dagster.example:3000/assets/human_quality"
    assert run_link(URL, "abc-123") == "http://dagster.example:3000/runs/abc-123"


def test_check_alert_links_its_hour_and_its_run(logs, run_hour, resources, instance, slack):
    hour_with(logs, HOUR, errors=5)
    result = run_hour()
    tick(resources, instance, HOUR + timedelta(hours=1, minutes=10))
    [message] = slack.posted()
    links = message["blocks"][2]["elements"][0]["text"]
    assert "/assets/hourly_metrics?view=partitions&partition=2026-03-01-10%3A00|" in links
    assert f"/runs/{result.run_id}|" in links


def test_missing_logs_alert_links_each_missing_hour(logs, resources, instance, slack, config_file):
    config_file({"alerts": {"missing_logs_after_minutes": 30, "missing_logs_lookback_hours": 3}})
    hour_with(logs, HOUR, n=5)  # 08:00 and 09:00 have no logs
    at = HOUR + timedelta(hours=2, minutes=20)
    tick(resources, instance, at, missing_logs_sensor)
    tick(resources, instance, at)
    [message] = slack.posted()
    links = message["blocks"][-1]["elements"][0]["text"]
    for hour in ("08", "09"):
        assert (
            f"/assets/llm_requests?view=partitions&partition=2026-03-01-{hour}%3A00|2026-03-01 {hour}:00 UTC>" in links
        )
    assert "10%3A00" not in links
