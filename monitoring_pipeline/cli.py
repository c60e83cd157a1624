"""The monitoring-pipeline command."""

import argparse
import os
import re
import secrets
import sys
import warnings
from datetime import datetime, timedelta, timezone

import dagster as dg

from monitoring_pipeline.defs.alerts import commands as alert_commands

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _instance() -> dg.DagsterInstance:
    """The instance at DAGSTER_HOME (what `make dev` shows), else a throwaway one."""
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    print("DAGSTER_HOME is not set: using a temporary Dagster instance (the UI will not show these runs).")
    return dg.DagsterInstance.ephemeral()


def cmd_demo(args: argparse.Namespace) -> int:
    from monitoring_pipeline.definitions import defs
    from monitoring_pipeline.defs.alerts.sensors import slack_alert_sensor
    from monitoring_pipeline.defs.ingest.assets import ALLOW_DELETED_FILES
    from monitoring_pipeline.defs.review.sample import SALT_ENV
    from monitoring_pipeline.lib.partitions import partition_key
    from monitoring_pipeline.resources import Clock
    from monitoring_pipeline.tools.demo import INCIDENTS, write_demo_env, write_sample_logs

    resources = dict(defs.resources or {})
    # A throwaway salt for the demo's user_hash (a deployment sets its own, kept secret).
    os.environ.setdefault(SALT_ENV, secrets.token_hex(16))
    day = (
        datetime.fromisoformat(args.day).replace(tzinfo=timezone.utc)
        if args.day
        else datetime.now(timezone.utc) - timedelta(days=1)
    )
    day = day.replace(hour=0, minute=0, second=0, microsecond=0)
    counts = write_sample_logs(resources["logs"].root, day, args.volume)
    print(
        f"Wrote {counts['valid_lines']:,} log lines (+{counts['malformed_lines']} malformed) for "
        f"{day:%Y-%m-%d} under {resources['logs'].root}/"
    )

    instance = _instance()
    job = defs.resolve_job_def("hourly_monitoring")
    failed_checks: dict[str, list[str]] = {}
    read = new = 0
    for h in range(24):
        key = partition_key(day + timedelta(hours=h))
        result = job.execute_in_process(
            partition_key=key,
            instance=instance,
            raise_on_error=False,
            run_config=QUIET,
            # The demo rewrote this day's logs under new file names: replacing the old ones' rows is the point.
            tags={ALLOW_DELETED_FILES: "true"},
        )
        # The alert sensor sees each hour as it would live, 10 min after it closed: an old day's
        # hours would otherwise be history (alerts.page_max_age_hours) and page nobody.
        closed = (day + timedelta(hours=h + 1, minutes=10)).isoformat()
        context = dg.build_sensor_context(instance=instance, resources={**resources, "clock": Clock(fixed=closed)})
        summary = slack_alert_sensor.evaluate_tick(context).skip_message or ""
        found = re.match(r"(\d+) run\(s\) read, (\d+) new message", summary)
        read, new = (read + int(found[1]), new + int(found[2])) if found else (read, new)
        if not result.success:
            print(f"  run for {key} FAILED: see the Dagster UI (run {result.run_id})")
        failed_checks[key] = sorted(
            f"{e.check_name}{'(CRITICAL)' if e.severity == dg.AssetCheckSeverity.ERROR else ''}"
            for e in result.get_asset_check_evaluations()
            if not e.passed
        )

    _print_summary(resources, day, failed_checks, INCIDENTS)
    print(f"\nAlert sensor: {read} run(s) read, {new} new message(s)")
    config = resources["settings"].load()
    destination = resources["alert_delivery"].destination(config.alerts.dry_run_file)
    if destination != "slack":
        print(f"No SLACK_BOT_TOKEN set: alerts were written to {os.path.abspath(destination)}")
    env = write_demo_env(".env", day)
    print(
        f"\nWrote {os.path.abspath(env)}: `dagster dev` started here shows {day:%Y-%m-%d} only (its 24 hours),"
        " and its schedule and missing-logs sensor stay quiet about the hours the demo did not write."
    )
    print("Open the Dagster UI on these runs with:  make dev   (then http://127.0.0.1:3000)")
    return 0


def _print_summary(resources: dict, day: datetime, failed_checks: dict, incidents: dict) -> None:
    with resources["warehouse"].get_connection() as conn:
        rows = conn.execute(
            """SELECT m.hour, m.requests, m.error_rate, m.latency_avg_ms, m.latency_p99_ms, m.total_tokens,
                      m.cost_usd, m.feedback_avg, m.safety_violations,
                      (SELECT count(*) FROM quarantine q WHERE q.hour = m.hour) AS quarantined
               FROM hourly_metrics m WHERE m.hour >= $start AND m.hour < $start + INTERVAL 1 DAY ORDER BY m.hour""",
            {"start": day.replace(tzinfo=None)},
        ).fetchall()
    print(
        f"\n{'hour (UTC)':<17}{'reqs':>6}{'err%':>7}{'avg ms':>8}{'p99 ms':>8}{'tokens':>10}{'cost $':>8}"
        f"{'stars':>6}{'unsafe':>7}{'quar.':>6}  failed checks / injected incident"
    )
    for hour, reqs, err, avg, p99, tokens, cost, stars, unsafe, quarantined in rows:
        key = f"{hour:%Y-%m-%d-%H}:00"
        note = ", ".join(failed_checks.get(key, [])) or "-"
        if hour.hour in incidents:
            note += f"   <- {incidents[hour.hour]}"
        print(
            f"{hour:%Y-%m-%d %H:00} {reqs:>6}{(err or 0):>7.1%}{(avg or 0):>8.0f}{(p99 or 0):>8.0f}{tokens:>10,}"
            f"{cost:>8.2f}{(stars or 0):>6.2f}{unsafe:>7}{quarantined:>6}  {note}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="monitoring-pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="write a day of sample logs with incidents, run every hour, alert")
    demo.add_argument("--day", help="UTC day to simulate, YYYY-MM-DD (default: yesterday)")
    demo.add_argument("--volume", type=int, default=1000, help="mean requests per hour (default 1000)")
    demo.set_defaults(func=cmd_demo)
    alert_commands.register(sub)
    from monitoring_pipeline.tools import bench, bench_backfill  # stdlib-only imports at module level

    bench_cmd = sub.add_parser("bench", help="time an hour of N log lines: bare DuckDB vs this pipeline vs pandas")
    bench.add_arguments(bench_cmd)
    bench_cmd.set_defaults(func=bench.run)
    backfill_cmd = sub.add_parser("bench-backfill", help="a real backfill of days of demo logs through dagster-daemon")
    bench_backfill.add_arguments(backfill_cmd)
    backfill_cmd.set_defaults(func=bench_backfill.run)
    args = parser.parse_args(argv)
    # Dagster warns, as the definitions load, about the preview and beta features this project uses
    # on purpose (partitioned asset checks, backfill_policy): a screenful of noise above the demo's table.
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
