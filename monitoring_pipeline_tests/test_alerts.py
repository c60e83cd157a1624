"""slack_alert_sensor over scripted hours: incidents open, repeat and resolve; routing; limits;
silences; failed runs; missing logs. Real runs, the real sensor, slack_sdk against a local server,
and a pinned clock instead of sleeping."""

import json
from datetime import timedelta

import dagster as dg
import duckdb
import pytest

from monitoring_pipeline.defs.alerts.messages import simple_message
from monitoring_pipeline.defs.alerts.sensors import slack_alert_sensor
from monitoring_pipeline.defs.ingest.missing_logs import missing_logs_sensor
from monitoring_pipeline.resources import Clock, DuckDBWarehouse
from monitoring_pipeline_tests.conftest import ALL_ASSETS, HOUR, TOKEN, record

CRITICAL = "#llm-alerts-critical"
WARN = "#llm-alerts"


def key(hour) -> str:
    return f"{hour:%Y-%m-%d-%H}:00"


def tick(resources, instance, at, sensor=slack_alert_sensor):
    """Evaluate the real sensor once, at `at` (UTC), against the runs on `instance`."""
    context = dg.build_sensor_context(instance=instance, resources={**resources, "clock": Clock(fixed=at.isoformat())})
    return sensor.evaluate_tick(context).skip_message


def hour_with(logs, hour, errors=0, n=100, unsafe=0, models=("chat-large",)):
    recs = [
        record(
            i,
            hour,
            model=models[i % len(models)],
            status="error" if i < errors else "ok",
            error_type="timeout" if i < errors else None,
            safety_flags=["pii"] if i < unsafe else [],
        )
        for i in range(n)
    ]
    logs.records(recs, hour)


def notifications(tmp_path):
    with duckdb.connect(str(tmp_path / "alerts.duckdb"), read_only=True) as conn:
        return conn.execute(
            "SELECT kind, channel, checks, status, payload->>'text' FROM notifications ORDER BY seq"
        ).fetchall()


@pytest.mark.slow
def test_incident_opens_repeats_after_the_interval_and_resolves(logs, run_hour, resources, instance, slack):
    hours = [HOUR + timedelta(hours=i) for i in range(4)]
    # 10:00 error burst (opens), 11:00 still failing (quiet), 12:00 still failing 4 h after the
    # first message (reminder), 13:00 healthy (resolved).
    ticks = [
        hours[0] + timedelta(hours=1, minutes=10),
        hours[1] + timedelta(hours=1, minutes=10),
        hours[0] + timedelta(hours=5, minutes=10),
        hours[3] + timedelta(hours=1, minutes=10),
    ]
    for i, hour in enumerate(hours):
        hour_with(logs, hour, errors=5 if i < 3 else 0)
        run_hour(key(hour))
        tick(resources, instance, ticks[i])
        tick(resources, instance, ticks[i] + timedelta(seconds=30))  # a second tick sends nothing more

    texts = slack.texts()
    assert [t.split(" — ")[0] for t in texts] == [
        "Monitoring: 1 firing",
        "Monitoring: 1 still firing",
        "Monitoring: 1 resolved",
    ]
    assert all("Checks: error_rate" in t for t in texts)
    assert "2026-03-01 10:00 UTC" in texts[0] and "12:00 UTC" in texts[1] and "13:00 UTC" in texts[2]
    first = slack.posted()[0]
    section = first["blocks"][1]["text"]["text"]
    assert "`error_rate` on `hourly_metrics`" in section
    assert "all traffic: *5.00%* vs threshold 1.00% (sample 100)" in section
    assert "model `chat-large`: *5.00%*" in section
    assert "hourly_metrics?view=partitions&partition=2026-03-01-10%3A00" in first["blocks"][2]["elements"][0]["text"]
    assert {m["channel"] for m in slack.posted()} == {WARN}
    assert slack.attempts() == 3


def test_critical_goes_to_its_own_channel_with_here_and_warnings_to_the_default(
    logs, run_hour, resources, instance, slack
):
    hour_with(logs, HOUR, errors=5, unsafe=1)
    run_hour()
    tick(resources, instance, HOUR + timedelta(hours=1, minutes=10))
    by_channel = {m["channel"]: m["text"] for m in slack.posted()}
    assert set(by_channel) == {CRITICAL, WARN}
    assert by_channel[CRITICAL].startswith("<!here> CRITICAL") and "safety_violations" in by_channel[CRITICAL]
    assert "error_rate" in by_channel[WARN] and "<!here>" not in by_channel[WARN]
    assert "safety_violations" not in by_channel[WARN]


@pytest.mark.slow
def test_the_model_that_drove_the_breach_is_named(logs, run_hour, resources, instance, slack):
    recs = [
        record(i, model="chat-large" if i % 2 else "code-small", latency_ms=9000.0 if i % 2 and i < 20 else 300.0)
        for i in range(200)
    ]
    logs.records(recs)
    run_hour()
    tick(resources, instance, HOUR + timedelta(hours=1, minutes=10))
    section = slack.posted()[0]["blocks"][1]["text"]["text"]
    assert "`latency_p99`" in section
    assert "model `chat-large`" in section and "model `code-small`" not in section


@pytest.mark.slow
def test_min_sample_keeps_a_dozen_requests_quiet(logs, run_hour, resources, instance, slack):
    logs.records([record(i, latency_ms=20000.0 if i == 0 else 500.0) for i in range(12)])  # p99 ~ 18 s, avg ~ 2.1 s
    run_hour()
    assert "1 run(s) read, 0 new message(s)" in tick(resources, instance, HOUR + timedelta(hours=1, minutes=10))
    assert slack.posted() == []


@pytest.mark.slow
def test_500_failing_checks_are_summarised_inside_slack_limits(logs, run_hour, resources, instance, slack):
    models = tuple(f"model-{m:03d}" for m in range(500))
    # every model gets one error out of its two requests
    logs.records(
        [
            record(
                i, model=models[i % 500], status="error" if i < 500 else "ok", error_type="timeout" if i < 500 else None
            )
            for i in range(1000)
        ]
    )
    run_hour()
    tick(resources, instance, HOUR + timedelta(hours=1, minutes=10))
    [message] = slack.posted()
    blocks = message["blocks"]
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert len(blocks) <= 50
    assert all(len(s) <= 3000 for s in sections)
    assert sum(len(s) for s in sections) + len(message["text"]) <= 40000
    assert "Checks: error_rate" in message["text"]
    assert "more scopes" in sections[0]  # 501 scopes (all + 500 models): listed in part, counted in full
    with duckdb.connect(str(resources["alert_state"].path), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM incidents WHERE state = 'firing'").fetchone()[0] == 501


@pytest.mark.slow
def test_silence_mutes_and_logs_then_expires(logs, run_hour, resources, instance, slack, config_file, tmp_path):
    config_file(
        {
            "alerts": {
                "dry_run_file": str(tmp_path / "dry.jsonl"),
                "silences": [{"check": "error_rate", "until": "2026-03-01T12:00:00Z", "reason": "provider outage"}],
            }
        }
    )
    hour_with(logs, HOUR, errors=5)
    run_hour()
    tick(resources, instance, HOUR + timedelta(hours=1, minutes=10))  # 11:10, silenced
    assert slack.posted() == []
    [(kind, channel, checks, status, text)] = notifications(tmp_path)
    assert (kind, channel, checks, status) == ("checks", WARN, ["error_rate"], "muted")
    assert "provider outage" in text

    later = HOUR + timedelta(hours=1)
    hour_with(logs, later, errors=5)
    run_hour(key(later))
    tick(resources, instance, later + timedelta(hours=1, minutes=10))  # 12:10, silence over
    [message] = slack.posted()
    assert message["text"].startswith("Monitoring: 1 firing") and "error_rate" in message["text"]


@pytest.mark.slow
def test_silence_of_one_model_leaves_the_others_loud(logs, run_hour, resources, instance, slack, config_file):
    config_file(
        {"alerts": {"silences": [{"check": "error_rate", "model": "chat-large", "until": "2027-01-01T00:00:00Z"}]}}
    )
    hour_with(logs, HOUR, errors=10, models=("chat-large", "code-small"))
    run_hour()
    tick(resources, instance, HOUR + timedelta(hours=1, minutes=10))
    [message] = slack.posted()
    section = message["blocks"][1]["text"]["text"]
    assert "model `code-small`" in section and "all traffic" in section and "chat-large" not in section


def test_failed_ingestion_alerts_once_as_a_failed_run(logs, run_hour, resources, instance, slack, tmp_path):
    hour_with(logs, HOUR, errors=50)
    (tmp_path / "blocked.duckdb").mkdir()  # the warehouse path is a folder: ingestion cannot open it
    broken = {**resources, "warehouse": DuckDBWarehouse(database=str(tmp_path / "blocked.duckdb"))}
    result = dg.materialize(
        ALL_ASSETS, partition_key=key(HOUR), resources=broken, instance=instance, raise_on_error=False
    )
    assert not result.success
    tick(resources, instance, HOUR + timedelta(hours=1, minutes=10))
    [message] = slack.posted()
    assert message["channel"] == WARN
    assert message["text"].startswith("Run failed:") and "llm_requests" in message["text"]
    assert f"/runs/{result.run_id}" in str(message["blocks"])


def test_missing_logs_alert_once_per_hour_after_the_deadline(logs, resources, instance, slack, config_file):
    config_file({"alerts": {"missing_logs_after_minutes": 30, "missing_logs_lookback_hours": 3}})
    hour_with(logs, HOUR, n=5)  # 10:00 has logs; 08:00, 09:00 and 11:00 do not
    at = HOUR + timedelta(hours=2, minutes=20)  # 12:20: 11:00 is not due before 12:30
    assert "2 newly reported" in tick(resources, instance, at, missing_logs_sensor)
    assert "0 newly reported" in tick(resources, instance, at + timedelta(minutes=5), missing_logs_sensor)
    at = HOUR + timedelta(hours=2, minutes=31)
    assert "1 newly reported" in tick(resources, instance, at, missing_logs_sensor)
    tick(resources, instance, at)  # slack_alert_sensor delivers what the other sensors queued
    texts = slack.texts()
    assert len(texts) == 2
    assert "2026-03-01 08:00 UTC" in texts[0] and "09:00 UTC" in texts[0] and "10:00" not in texts[0]
    assert "2026-03-01 11:00 UTC" in texts[1]


@pytest.mark.slow
def test_backfilled_old_hour_does_not_resolve_a_current_incident(logs, run_hour, resources, instance, slack):
    now_hour = HOUR + timedelta(hours=5)
    hour_with(logs, now_hour, errors=5)
    run_hour(key(now_hour))
    tick(resources, instance, now_hour + timedelta(hours=1, minutes=10))
    hour_with(logs, HOUR, errors=0)
    run_hour(key(HOUR))  # a backfill of a healthy older hour
    tick(resources, instance, now_hour + timedelta(hours=1, minutes=20))
    assert [t.split(" — ")[0] for t in slack.texts()] == ["Monitoring: 1 firing"]


@pytest.mark.slow
def test_token_stays_out_of_messages_and_the_log(logs, run_hour, resources, instance, slack, tmp_path):
    hour_with(logs, HOUR, errors=5)
    run_hour()
    slack.script(("status", 503, {}))
    summary = tick(resources, instance, HOUR + timedelta(hours=1, minutes=10))
    with duckdb.connect(str(tmp_path / "alerts.duckdb"), read_only=True) as conn:
        dump = str(conn.execute("SELECT * FROM notifications").fetchall())
    assert "HTTP 503" in dump and "HTTP 503" in summary and TOKEN not in dump + summary
    tick(resources, instance, HOUR + timedelta(hours=1, minutes=11))
    assert slack.posted() and all(TOKEN not in str(m) for m in slack.posted())
    assert all(r["authorization"] == f"Bearer {TOKEN}" for r in slack.requests)


HOSTILE_MODELS = ("a`<!channel>`b", "<https://evil.example|Open in Dagster>", "x\n<!everyone>")


@pytest.mark.slow
def test_messages_hostile_model_names_cannot_ping_or_disguise_links(logs, run_hour, resources, instance, slack):
    """Model names come from the apps' logs: one that breaks out of its code span, one that is a
    disguised link and one that puts <!everyone> on its own line reach Slack inert."""
    hour_with(logs, HOUR, errors=30, n=90, models=HOSTILE_MODELS)
    run_hour()
    tick(resources, instance, HOUR + timedelta(hours=1, minutes=10))
    [message] = slack.posted()
    payload = message["text"] + json.dumps(message["blocks"], ensure_ascii=False)
    for live in ("<!channel>", "<!everyone>", "<!here>", "<https://evil", "|Open in Dagster>"):
        assert live not in payload
    section = message["blocks"][1]["text"]["text"]
    assert "model `a'&lt;!channel&gt;'b`" in section  # still named, inside its code span
    assert "model `&lt;https://evil.example|Open in Dagster&gt;`" in section
    assert "model `x &lt;!everyone&gt;`" in section  # on the model's own line
    assert len(section.splitlines()) == 5  # the head, all traffic, three models


def test_messages_run_failure_text_is_escaped_and_only_our_here_pages():
    failure = "boom\n<!channel> see `<https://evil.example|Open in Dagster>` & retry"
    text, blocks = simple_message("Run failed: <!everyone>", ["Failed steps: x.", failure], None, critical=True)
    mrkdwn = text + json.dumps(blocks[1:])  # blocks[0] is the plain_text header: Slack shows it as typed
    assert text.startswith("<!here> ") and mrkdwn.count("<!") == 1
    assert "<https://evil" not in mrkdwn and "<!everyone>" not in mrkdwn
    assert blocks[1]["text"]["text"].splitlines()[1] == (
        "boom &lt;!channel&gt; see '&lt;https://evil.example|Open in Dagster&gt;' &amp; retry"
    )
