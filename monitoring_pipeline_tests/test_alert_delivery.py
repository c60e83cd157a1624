"""Delivery through a misbehaving Slack: nothing lost, nothing doubled. The real sensor, slack_sdk
against a local server that answers 429/503, drops connections or hangs, and a pinned clock."""

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import dagster as dg
import duckdb
import pytest

from monitoring_pipeline.cli import main
from monitoring_pipeline.defs.alerts import outbox
from monitoring_pipeline.defs.alerts.delivery import AlertDelivery, DeliveryError, redact
from monitoring_pipeline.defs.alerts.messages import simple_message
from monitoring_pipeline.defs.alerts.sensors import slack_alert_sensor
from monitoring_pipeline.resources import Clock
from monitoring_pipeline_tests.conftest import TOKEN

T0 = datetime(2026, 3, 1, 11, 10)


def queue(resources, *names: str) -> None:
    """Put messages in the notification log, as the sensors do for what they find."""
    with resources["alert_state"].get_connection() as conn:
        outbox.ensure(conn)
        for name in names:
            text, blocks = simple_message(f"alert {name}", ["details"], None)
            outbox.record(conn, name, "test", "#llm-alerts", [], text, blocks, T0)


def tick(resources, instance, at: datetime):
    context = dg.build_sensor_context(instance=instance, resources={**resources, "clock": Clock(fixed=at.isoformat())})
    return slack_alert_sensor.evaluate_tick(context).skip_message


def status(resources) -> dict:
    with duckdb.connect(resources["alert_state"].path, read_only=True) as conn:
        return dict(conn.execute("SELECT notification_id, status FROM notifications").fetchall())


@pytest.mark.parametrize(
    "retry_after, too_early, on_time",
    [
        ("1", 0.5, 1),
        ("1.5", 1, 2),
        ("3600", 299, 301),  # 3600 s is capped to retry_after_cap_s (300)
    ],
)
def test_429_waits_for_retry_after_then_delivers(resources, instance, slack, retry_after, too_early, on_time):
    queue(resources, "a")
    slack.script(("status", 429, {"Retry-After": retry_after}))
    tick(resources, instance, T0)
    tick(resources, instance, T0 + timedelta(seconds=too_early))
    assert slack.attempts() == 1 and slack.posted() == []  # it waited
    tick(resources, instance, T0 + timedelta(seconds=on_time))
    assert slack.attempts() == 2 and slack.texts() == ["alert a: details"]
    assert status(resources) == {"a": "sent"}


def test_503_stays_pending_and_is_retried_next_tick(resources, instance, slack):
    queue(resources, "a")
    slack.script(("status", 503, {}))
    assert "HTTP 503" in tick(resources, instance, T0)
    assert status(resources) == {"a": "pending"}
    tick(resources, instance, T0 + timedelta(seconds=30))
    assert slack.texts() == ["alert a: details"]


@pytest.mark.parametrize("behaviour", ["drop", ("hang", 4)])
def test_a_post_that_may_have_landed_is_looked_up_not_sent_again(resources, instance, slack, behaviour):
    """The server takes the message, then resets or never answers. slack_sdk's default retry would
    post again at once; our client makes one request, and the next tick finds the message by its
    notification id in the channel history instead of posting a duplicate."""
    queue(resources, "a", "b")
    slack.script(behaviour)
    tick(resources, instance, T0)
    assert slack.attempts() == 1  # no client-side retry
    assert status(resources) == {"a": "posting", "b": "pending"}
    tick(resources, instance, T0 + timedelta(seconds=30))
    assert slack.texts() == ["alert a: details", "alert b: details"]  # once each, in order
    assert slack.attempts() == 2
    assert status(resources) == {"a": "sent", "b": "sent"}


def test_a_post_that_did_not_land_is_sent_after_the_lookup(resources, instance, slack, monkeypatch):
    """Timeout before the server read the request: the lookup finds nothing, so it is posted."""
    queue(resources, "a")
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/api/")  # nothing listens: refused, known not posted
    tick(resources, instance, T0)
    assert status(resources) == {"a": "pending"}
    monkeypatch.setenv("SLACK_API_URL", slack.url)
    with duckdb.connect(resources["alert_state"].path) as conn:  # as a crash mid-post leaves it
        conn.execute("UPDATE notifications SET status = 'posting', last_attempt_at = $t", {"t": T0})
    tick(resources, instance, T0 + timedelta(seconds=30))
    assert slack.texts() == ["alert a: details"]
    assert [r["method"] for r in slack.requests] == ["conversations.list", "conversations.history", "chat.postMessage"]


def test_nothing_lost_when_slack_recovers_and_loud_after_k_failed_ticks(resources, instance, slack, capfd):
    queue(resources, "a", "b", "c")
    slack.script(*[("status", 503, {})] * 3)
    tick(resources, instance, T0)
    tick(resources, instance, T0 + timedelta(seconds=30))
    with pytest.raises(Exception, match="ALERTS ARE NOT GETTING THROUGH: 3 message"):
        tick(resources, instance, T0 + timedelta(seconds=60))  # the 3rd failure (loud_after_failed_ticks: 3)
    assert "ERROR - ALERTS ARE NOT GETTING THROUGH" in capfd.readouterr().err
    assert "3 delivered" in tick(resources, instance, T0 + timedelta(seconds=90))
    assert slack.texts() == ["alert a: details", "alert b: details", "alert c: details"]
    tick(resources, instance, T0 + timedelta(seconds=120))
    assert len(slack.posted()) == 3


@pytest.mark.slow
def test_a_tick_that_crashes_after_posting_does_not_post_again(resources, slack, config_file, tmp_path, instance):
    """`monitoring-pipeline test-alert` is killed while Slack holds its request (the message is
    already in the channel); the sensor's next tick finds it and posts nothing."""
    slack.script(("hang", 30))
    env = {
        **os.environ,
        "MONITORING_ALERTS_DB": resources["alert_state"].path,
        "MONITORING_CONFIG": str(config_file.path),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitoring_pipeline.cli", "test-alert"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while slack.attempts() == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    assert len(slack.posted()) == 1
    assert list(status(resources).values()) == ["posting"]
    tick(resources, instance, datetime.now(timezone.utc).replace(tzinfo=None))
    assert len(slack.posted()) == 1 and slack.attempts() == 1
    assert list(status(resources).values()) == ["sent"]


def test_cli_test_alert_incidents_silence_unsilence(resources, slack, config_file, monkeypatch, capsys):
    monkeypatch.setenv("MONITORING_ALERTS_DB", resources["alert_state"].path)
    monkeypatch.setenv("MONITORING_CONFIG", str(config_file.path))
    assert main(["test-alert", "--critical"]) == 0
    assert [m["channel"] for m in slack.posted()] == ["#llm-alerts-critical"]
    assert "Test alert" in slack.texts()[0]
    assert "to #llm-alerts-critical via slack" in capsys.readouterr().out

    assert (
        main(["silence", "--check", "latency_p99", "--model", "chat-large", "--for", "2h", "--reason", "deploy"]) == 0
    )
    silence_id = capsys.readouterr().out.split()[1].rstrip(":")
    assert main(["incidents"]) == 0
    out = capsys.readouterr().out
    assert "No open incidents." in out and f"silence {silence_id}: check latency_p99, model chat-large" in out
    assert main(["unsilence", silence_id]) == 0
    assert main(["incidents"]) == 0
    out = capsys.readouterr().out
    assert f"Removed silence {silence_id}" in out and f"silence {silence_id}:" not in out

    slack.script(("status", 503, {}))
    assert main(["test-alert"]) == 1
    assert "NOT delivered" in capsys.readouterr().out


def test_slack_sdks_default_retry_would_double_a_message_ours_does_not(slack):
    """Why the client retries nothing: after a reset, slack_sdk's default handler re-sends a post
    the server already took."""
    from slack_sdk import WebClient

    slack.script("drop")
    default = WebClient(token=TOKEN, base_url=slack.url)
    default.chat_postMessage(channel="#llm-alerts", text="once")  # the retry's answer is ok
    assert slack.texts() == ["once", "once"]  # a duplicate in the channel

    slack.script("drop")
    with pytest.raises(DeliveryError) as err:
        AlertDelivery(timeout_s=2).send("n1", "#llm-alerts", "ours", [], "unused.jsonl")
    assert not err.value.outcome_known  # it may have landed: looked up before any new attempt
    assert slack.texts().count("ours") == 1


def _token_pieces(text: str) -> list[str]:
    """Every 8-character piece of the token found in `text`."""
    return [TOKEN[i : i + 8] for i in range(len(TOKEN) - 7) if TOKEN[i : i + 8] in text]


@pytest.mark.parametrize("code", [500, 502])
def test_delivery_error_body_echoing_a_cut_token_leaks_none_of_it(resources, instance, slack, caplog, capfd, code):
    """A proxy's error page echoes the request's Authorization header. slack_sdk keeps the body's
    first 100 characters, here cut just before the token's last one: exact-match masking misses
    it. Nothing of the token may reach the notification log, the tick's messages or any log."""
    echo = f"Authorization: Bearer {TOKEN}"
    body = "<html>" + "-" * (101 - len(echo) - len("<html>")) + echo + " (echoed)</html>"
    assert body[:100].endswith(TOKEN[:-1])  # the cut slack_sdk makes
    queue(resources, "a")
    slack.script(*[("raw", code, body)] * 3)
    texts = [tick(resources, instance, T0), tick(resources, instance, T0 + timedelta(seconds=30))]
    with pytest.raises(Exception, match="ALERTS ARE NOT GETTING THROUGH") as failing:
        tick(resources, instance, T0 + timedelta(seconds=60))
    texts.append(str(failing.value))
    with duckdb.connect(resources["alert_state"].path, read_only=True) as conn:
        (last_error,) = conn.execute("SELECT last_error FROM notifications").fetchone()
    captured = capfd.readouterr()
    assert slack.attempts() == 3 and status(resources) == {"a": "pending"}
    assert last_error.startswith(f"HTTP {code}")  # the status is kept: the on-call sees what happened
    assert f"HTTP {code}" in texts[0] and "Alert delivery failed" in captured.err
    for text in [last_error, *texts, caplog.text, captured.out, captured.err]:
        assert _token_pieces(text) == []
    assert "Bearer" not in last_error and "<html>" not in last_error  # no body at all


def test_delivery_redact_masks_token_shaped_text():
    text = "xoxp-1-2-abc and xoxb-cut-shor and Authorization: Bearer abc.def and xoxb"
    assert redact(text) == "xox*-*** and xox*-*** and Authorization: Bearer *** and xoxb"
    assert redact(f"x{TOKEN}y", TOKEN) == "x***y"
