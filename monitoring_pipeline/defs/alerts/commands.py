"""On-call commands: `monitoring-pipeline incidents | silence | unsilence | test-alert`.

They use the same resources as the sensors (MONITORING_ALERTS_DB, MONITORING_CONFIG,
SLACK_BOT_TOKEN, SLACK_API_URL), so they act on what the pipeline acts on.
"""

import argparse
import re
import uuid
from datetime import datetime, timedelta

from monitoring_pipeline.config import naive_utc
from monitoring_pipeline.defs.alerts import outbox
from monitoring_pipeline.defs.alerts.incidents import open_incidents
from monitoring_pipeline.defs.alerts.messages import simple_message
from monitoring_pipeline.defs.alerts.sensors import deliver
from monitoring_pipeline.resources import build_resources


def _resources() -> dict:
    return build_resources()


def _duration(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([mhd])", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a duration like 30m, 2h or 1d")
    return timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[match[2]]: float(match[1])})


def cmd_incidents(args: argparse.Namespace) -> int:
    res = _resources()
    with res["alert_state"].get_connection() as conn:
        outbox.ensure(conn)
        rows = open_incidents(conn)
        silences = conn.execute(
            "SELECT silence_id, coalesce(check_name, '*'), coalesce(model, '*'), until, reason FROM silences"
            " WHERE until > $now ORDER BY until",
            {"now": res["clock"].now()},
        ).fetchall()
    if not rows:
        print("No open incidents.")
    else:
        print(
            f"{'check':<20}{'asset':<16}{'scope':<16}{'severity':<9}{'since':<18}{'last hour':<18}{'value':>12}{'threshold':>12}"
        )
        for check, asset, scope, severity, opened, _, last, value, threshold, *_ in rows:
            print(
                f"{check:<20}{asset:<16}{scope:<16}{'CRITICAL' if severity == 'ERROR' else 'warning':<9}"
                f"{opened:%Y-%m-%d %H:%M}  {last or '-':<18}{_fmt(value):>12}{_fmt(threshold):>12}"
            )
    for silence_id, check, model, until, reason in silences:
        print(f"silence {silence_id}: check {check}, model {model}, until {until:%Y-%m-%d %H:%M} UTC {reason or ''}")
    return 0


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def cmd_silence(args: argparse.Namespace) -> int:
    if not args.check and not args.model:
        print("silence: give --check and/or --model")
        return 2
    res = _resources()
    now = res["clock"].now()
    until = naive_utc(args.until) if args.until else now + args.duration
    silence_id = uuid.uuid4().hex[:8]
    with res["alert_state"].get_connection() as conn:
        outbox.ensure(conn)
        conn.execute(
            "INSERT INTO silences VALUES ($id, $check, $model, $until, $reason, $now)",
            {
                "id": silence_id,
                "check": args.check,
                "model": args.model,
                "until": until,
                "reason": args.reason,
                "now": now,
            },
        )
    print(
        f"Silence {silence_id}: check {args.check or 'any'}, model {args.model or 'any'}, until {until:%Y-%m-%d %H:%M} UTC."
        " Muted alerts are still written to the notification log."
    )
    return 0


def cmd_unsilence(args: argparse.Namespace) -> int:
    res = _resources()
    with res["alert_state"].get_connection() as conn:
        outbox.ensure(conn)
        removed = conn.execute(
            "DELETE FROM silences WHERE silence_id = $id RETURNING 1", {"id": args.silence_id}
        ).fetchall()
    if not removed:
        print(f"No silence {args.silence_id} (silences from the configuration file are changed there).")
        return 1
    print(f"Removed silence {args.silence_id}.")
    return 0


def cmd_test_alert(args: argparse.Namespace) -> int:
    res = _resources()
    config = res["settings"].load()
    now = res["clock"].now()
    channel = config.alerts.critical_channel if args.critical else config.alerts.channel
    text, blocks = simple_message(
        "Test alert from monitoring-pipeline", [f"If you read this in {channel}, alerts reach you."], None
    )
    with res["alert_state"].get_connection() as conn:
        outbox.ensure(conn)
        outbox.record(conn, f"test:{uuid.uuid4().hex}", "test", channel, [], text, blocks, now)
        sent, error = deliver(conn, res["alert_delivery"], config, now, _PrintLogger())
    destination = res["alert_delivery"].destination(config.alerts.dry_run_file)
    if error:
        print(
            f"Test alert NOT delivered to {channel} via {destination}: {error}. It stays in the notification log;"
            " slack_alert_sensor retries it."
        )
        return 1
    print(f"Delivered {sent} message(s), the test alert included, to {channel} via {destination}.")
    return 0


class _PrintLogger:
    def info(self, message: str) -> None:
        print(message)


def register(sub) -> None:
    p = sub.add_parser("incidents", help="list open incidents and active silences")
    p.set_defaults(func=cmd_incidents)
    p = sub.add_parser("silence", help="mute alerts for a check and/or model for a while")
    p.add_argument("--check", help="check name, e.g. latency_p99 (default: any)")
    p.add_argument("--model", help="model (incident scope), or 'all' for the hour as a whole (default: any)")
    when = p.add_mutually_exclusive_group()
    when.add_argument(
        "--for",
        dest="duration",
        type=_duration,
        default=timedelta(hours=4),
        help="how long, e.g. 30m, 2h, 1d (default 4h)",
    )
    when.add_argument(
        "--until", type=datetime.fromisoformat, help="until this time, ISO 8601 (UTC unless it has an offset)"
    )
    p.add_argument("--reason", default="", help="why, shown in the notification log")
    p.set_defaults(func=cmd_silence)
    p = sub.add_parser("unsilence", help="remove a silence made with `silence`")
    p.add_argument("silence_id")
    p.set_defaults(func=cmd_unsilence)
    p = sub.add_parser("test-alert", help="send a test message through the configured delivery")
    p.add_argument("--critical", action="store_true", help="to the critical channel")
    p.set_defaults(func=cmd_test_alert)
