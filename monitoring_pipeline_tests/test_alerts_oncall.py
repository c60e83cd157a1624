"""What on-call sees and when: links that open the hour an alert is about, old hours that do not
page, a cursor that follows the instance, runs tagged with their failed checks, and the
alert_incidents asset. Real runs on real instances and the real sensor."""

from datetime import timedelta

import dagster as dg
import duckdb
import pytest

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


@pytest.mark.slow
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


@pytest.mark.slow
def test_run_cursor_from_another_instance_is_dropped_not_obeyed(logs, resources, instance, slack, tmp_path):
    """DAGSTER_HOME reset (or moved to Postgres) while MONITORING_ALERTS_DB stays: the new instance's
    runs alert; before, the old instance's cursor (further along) skipped them all."""
    later = [HOUR + timedelta(hours=i) for i in range(3)]
    for hour in later[:2]:  # the old instance: two healthy hours, so its cursor is far along
        hour_with(logs, hour)
        dg.materialize(ALL_ASSETS, partition_key=key(hour), resources=resources, instance=instance)
    tick(resources, instance, HOUR + timedelta(hours=2, minutes=10))
    assert slack.posted() == []

    with dg.DagsterInstance.ephemeral() as fresh:  # a new instance: its own storage, its own id
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


def incidents(resources):
    with duckdb.connect(str(resources["alert_state"].path), read_only=True) as conn:
        return conn.execute(
            "SELECT check_name, scope, state, first_partition, last_partition, last_notified_at IS NOT NULL"
            " FROM incidents ORDER BY ALL"
        ).fetchall()


def statuses(resources):
    with duckdb.connect(str(resources["alert_state"].path), read_only=True) as conn:
        return conn.execute("SELECT kind, status, payload->>'text' FROM notifications ORDER BY seq").fetchall()


@pytest.mark.slow
def test_resolved_incident_does_not_reopen_from_a_rerun_of_an_older_or_the_same_hour(
    logs, run_hour, resources, instance, slack
):
    bad, good = HOUR, HOUR + timedelta(hours=1)
    hour_with(logs, bad, errors=5, unsafe=1)
    run_hour(key(bad))
    tick(resources, instance, bad + timedelta(hours=1, minutes=10))  # firing (+ CRITICAL)
    hour_with(logs, good)
    run_hour(key(good))
    tick(resources, instance, good + timedelta(hours=1, minutes=10))  # resolved
    assert len(slack.posted()) == 4  # firing and resolved, warning and critical
    run_hour(key(bad))  # the demo re-run: the older, failing hour again
    tick(resources, instance, good + timedelta(hours=1, minutes=20))
    assert len(slack.posted()) == 4
    assert {state for _, _, state, *_ in incidents(resources)} == {"resolved"}


@pytest.mark.slow
def test_hour_older_than_page_max_age_is_recorded_not_posted(logs, run_hour, resources, instance, slack):
    hour_with(logs, HOUR, errors=5, unsafe=1)
    run_hour(key(HOUR))
    now = HOUR + timedelta(hours=8)  # 10:00 closed 7 h ago; page_max_age_hours is 6
    assert "0 new message(s)" in tick(resources, instance, now)
    assert slack.posted() == []
    assert ("error_rate", "all", "firing", "2026-03-01-10:00", "2026-03-01-10:00", False) in incidents(resources)
    assert {(kind, status) for kind, status, _ in statuses(resources)} == {("checks", "history")}
    assert all("closed more than 6 h before" in text for *_, text in statuses(resources))

    current = HOUR + timedelta(hours=7)  # still failing now: announced, since nobody was told yet
    hour_with(logs, current, errors=5)
    run_hour(key(current))
    tick(resources, instance, current + timedelta(hours=1, minutes=10))
    [message] = slack.posted()
    assert message["text"].startswith("Monitoring: 1 firing") and "17:00 UTC" in message["text"]


@pytest.mark.slow
def test_backfill_posts_one_summary_and_never_pages(logs, resources, instance, slack):
    hours = [HOUR + timedelta(hours=i) for i in range(3)]
    for i, hour in enumerate(hours):
        hour_with(logs, hour, errors=5 if i < 2 else 0, unsafe=1 if i == 0 else 0)
        dg.materialize(
            ALL_ASSETS,
            partition_key=key(hour),
            resources=resources,
            instance=instance,
            tags={"dagster/backfill": "bf1"},
        )
    tick(resources, instance, hours[-1] + timedelta(hours=1, minutes=10))
    tick(resources, instance, hours[-1] + timedelta(hours=1, minutes=11))
    [message] = slack.posted()
    assert message["channel"] == "#llm-alerts" and "<!here>" not in message["text"]
    assert message["text"].startswith(
        "Backfill bf1 of 3 hour(s) done: 4 incident(s), none current"
    )  # 2 checks x (all, chat-large)
    assert "2026-03-01 10:00 UTC .. 2026-03-01 12:00 UTC" in message["text"]
    assert "/runs/b/bf1?tab=runs" in str(message["blocks"])
    # each hour's check messages are recorded (10:00 warn + critical, 11:00, 12:00 resolving both), none told
    assert {(kind, status) for kind, status, _ in statuses(resources)} == {("checks", "history"), ("backfill", "sent")}
    assert len(statuses(resources)) == 6


@pytest.mark.slow
def test_run_is_tagged_with_its_failed_checks(logs, run_hour, resources, instance, slack):
    hour_with(logs, HOUR, errors=5, unsafe=1)
    failing = run_hour(key(HOUR))
    later = HOUR + timedelta(hours=1)
    hour_with(logs, later)
    healthy = run_hour(key(later))
    tick(resources, instance, later + timedelta(hours=1, minutes=10))
    tags = {run_id: instance.get_run_by_id(run_id).tags for run_id in (failing.run_id, healthy.run_id)}
    assert tags[failing.run_id]["monitoring/failed_checks"] == "error_rate,safety_violations"
    assert tags[healthy.run_id]["monitoring/failed_checks"] == ""


@pytest.mark.slow
def test_alert_incidents_is_reported_when_open_incidents_change(logs, run_hour, resources, instance, slack):
    from monitoring_pipeline.definitions import defs
    from monitoring_pipeline.defs.alerts.sensors import slack_alert_sensor
    from monitoring_pipeline.resources import Clock

    node = defs.resolve_asset_graph().get(dg.AssetKey("alert_incidents"))
    assert node.group_name == "alerts"
    assert {k.to_user_string() for k in node.parent_keys} >= {"llm_requests", "hourly_metrics", "human_quality"}

    def evaluate(at):
        context = dg.build_sensor_context(
            instance=instance, resources={**resources, "clock": Clock(fixed=at.isoformat())}
        )
        result = slack_alert_sensor.evaluate_tick(context)
        for event in result.asset_events:  # what the sensor daemon does with them
            instance.report_runless_asset_event(event)
        return result.asset_events

    hour_with(logs, HOUR, errors=5, unsafe=1)
    run_hour(key(HOUR))
    [event] = evaluate(HOUR + timedelta(hours=1, minutes=10))
    stored = instance.get_latest_materialization_event(dg.AssetKey("alert_incidents")).asset_materialization
    assert stored.metadata["open_incidents"].value == 4 and stored.metadata["critical"].value == 2
    table = stored.metadata["incidents"].value
    assert "| error_rate | hourly_metrics | chat-large | warning |" in table
    assert "| safety_violations | hourly_metrics | all | CRITICAL |" in table and "2026-03-01-10:00" in table
    assert evaluate(HOUR + timedelta(hours=1, minutes=11)) == []  # nothing changed: nothing reported

    later = HOUR + timedelta(hours=1)
    hour_with(logs, later)
    run_hour(key(later))
    [event] = evaluate(later + timedelta(hours=1, minutes=10))
    assert event.metadata["open_incidents"].value == 0
    assert event.metadata["incidents"].value == "No open incidents."


# The summary of a real backfill through the daemon: test_webserver.py (one `dagster dev` for it all).


def test_backfill_summary_counts_the_hours_of_ranged_runs():
    """A backfill run covering a day of hours (lib/hourly.py) counts 24 hours, not one."""
    from monitoring_pipeline.defs.alerts.runs import FinishedRun

    ranged = FinishedRun(
        "r1", "hourly_monitoring", None, False, None, partition_range=("2026-03-01-00:00", "2026-03-01-23:00")
    )
    single = FinishedRun("r2", "hourly_monitoring", "2026-03-02-05:00", False, None)
    assert ranged.hours == ("2026-03-01-00:00", "2026-03-01-23:00", 24)
    assert single.hours == ("2026-03-02-05:00", "2026-03-02-05:00", 1)
