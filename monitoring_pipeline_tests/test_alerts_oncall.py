"""What on-call sees and when: links that open the hour an alert is about, old hours that do not
page, a cursor that follows the instance, runs tagged with their failed checks, and the
alert_incidents asset. Real runs on real instances and the real sensor."""

from datetime import timedelta

import dagster as dg

from monitoring_pipeline.defs.alerts.messages import asset_link, run_link
from monitoring_pipeline.defs.ingest.missing_logs import missing_logs_sensor
from monitoring_pipeline_tests.conftest import ALL_ASSETS, HOUR
from monitoring_pipeline_tests.test_alerts import hour_with, key, tick

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


def test_run_cursor_from_another_instance_is_dropped_not_obeyed(logs, resources, instance, slack, tmp_path):
    """DAGSTER_HOME reset (or moved to Postgres) while MONITORING_ALERTS_DB stays: the new instance's
    runs alert; before, the old instance's cursor (further along) skipped them all."""
    later = [HOUR + timedelta(hours=i) for i in range(3)]
    for hour in later[:2]:  # the old instance: two healthy hours, so its cursor is far along
        hour_with(logs, hour)
        dg.materialize(ALL_ASSETS, partition_key=key(hour), resources=resources, instance=instance)
    tick(resources, instance, HOUR + timedelta(hours=2, minutes=10))
    assert slack.posted() == []

    with dg.instance_for_test() as fresh:
        hour_with(logs, later[2], errors=5)
        dg.materialize(ALL_ASSETS, partition_key=key(later[2]), resources=resources, instance=fresh)
        summary = tick(resources, fresh, HOUR + timedelta(hours=3, minutes=10))
        assert "run cursor reset" in summary
        [message] = slack.posted()
        assert "error_rate" in message["text"] and "2026-03-01 12:00 UTC" in message["text"]
        # the cursor now belongs to the fresh instance: the next tick reads nothing again
        assert "0 run(s) read" in tick(resources, fresh, HOUR + timedelta(hours=3, minutes=11))
    # back on the old instance, nothing alerted twice
    tick(resources, instance, HOUR + timedelta(hours=3, minutes=12))
    assert len(slack.posted()) == 1
