"""A real backfill, the way a user launches one: the repo's dagster.yaml, `dagster-daemon run`,
and `dagster job backfill`, over days of demo logs. Reports wall time, runs, hours/s, failed runs,
lock errors. The CLI creates the same job backfill as the UI's "Launch backfill" on
hourly_monitoring (a PartitionBackfill the daemon submits), so the daemon applies the assets'
backfill policy to it alike: ranges of up to a week per run.

    monitoring-pipeline bench-backfill --days 7 --volume 100
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from monitoring_pipeline.lib.db import one

PACKAGE = Path(__file__).resolve().parents[1]
REPO_DAGSTER_YAML = PACKAGE.parent / "dagster.yaml"
MODULE = "monitoring_pipeline.definitions"
# The tables (and assets) every backfilled hour must be in.
HOURLY_TABLES = (
    "llm_requests",
    "quarantine",
    "hourly_metrics",
    "hourly_model_metrics",
    "evaluation_flags",
    "hourly_evaluations",
    "metric_anomalies",
    "review_sample",
)


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def prepare(workdir: Path, first_day: datetime, days: int, volume: int) -> dict:
    """A DAGSTER_HOME holding a copy of the repo's dagster.yaml, demo logs for `days` days, and the
    environment that points the pipeline at them."""
    from monitoring_pipeline.tools.demo import write_sample_logs

    home = workdir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_DAGSTER_YAML, home / "dagster.yaml")
    lines = 0
    for d in range(days):
        lines += write_sample_logs(workdir / "logs", first_day + timedelta(days=d), volume)["valid_lines"]
    (workdir / "config.yaml").write_text(
        f"review: {{output_dir: {workdir / 'review'}}}\nalerts: {{dry_run_file: {workdir / 'alerts.jsonl'}}}\n"
    )
    # The daemon's run workers import the code afresh for every run: give them a frozen copy, so
    # editing the working tree while a long backfill runs cannot change what it measures.
    code = workdir / "code"
    shutil.copytree(PACKAGE, code / "monitoring_pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    env = {
        **os.environ,
        "PYTHONPATH": str(code),
        "DAGSTER_HOME": str(home),
        # as `make dev` runs the daemon (see the Makefile): one planned event per asset and run
        "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
        "MONITORING_DUCKDB_PATH": str(workdir / "monitoring.duckdb"),
        "MONITORING_ALERTS_DB": str(workdir / "alerts.duckdb"),
        "MONITORING_LOG_DIR": str(workdir / "logs"),
        "MONITORING_CONFIG": str(workdir / "config.yaml"),
        "MONITORING_PARTITIONS_START": f"{first_day:%Y-%m-%d}",
    }
    return {"env": env, "home": home, "lines": lines}


# The UI's "Launch backfill" on hourly_monitoring: the GraphQL mutation launchPartitionBackfill
# with the job's partition set, run in process against the same workspace the webserver serves.
# The daemon then submits the backfill under the job's backfill policy (ranges of hours per run).
# `dagster job backfill` instead submits one run per hour itself and ignores the policy.
LAUNCH_LIKE_THE_UI = """
import sys
import dagster as dg
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import ModuleTarget
from dagster_graphql.test.utils import execute_dagster_graphql

from monitoring_pipeline.lib.partitions import hourly_partitions

MUTATION = (
    "mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {"
    " __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message stack } } }"
)
first, last = sys.argv[1:3]
names = hourly_partitions.get_partition_keys_in_range(dg.PartitionKeyRange(first, last))
target = ModuleTarget(
    module_name="monitoring_pipeline.definitions", attribute=None, working_directory=None, location_name=None
)
params = {
    "selector": {
        "partitionSetName": "hourly_monitoring_partition_set",
        "repositorySelector": {"repositoryLocationName": "monitoring_pipeline.definitions", "repositoryName": "__repository__"},
    },
    "partitionNames": names,
}
with dg.DagsterInstance.get() as instance, WorkspaceProcessContext(instance, target) as workspace:
    result = execute_dagster_graphql(workspace.create_request_context(), MUTATION, {"p": params})
    launched = result.data["launchPartitionBackfill"] if result.data else None
    if not launched or launched["__typename"] != "LaunchBackfillSuccess":
        sys.exit(f"launchPartitionBackfill: {result.errors or launched}")
    print(f"Launched backfill {launched['backfillId']} of {len(names)} partitions")
"""


def run_backfill(
    workdir: Path, first_day: datetime, hours: int, env: dict, timeout_s: float = 3600, via: str = "ui"
) -> dict:
    """Start the daemon, launch the backfill as the UI does (`via="cli"`: `dagster job backfill`),
    wait until every run has finished."""
    import dagster as dg

    home = Path(env["DAGSTER_HOME"])  # relative paths in dagster.yaml resolve against the cwd
    with _at_home(home), dg.DagsterInstance.get():
        pass  # creates the instance's storage once, before the daemon and the launcher race to migrate it
    with open(workdir / "daemon.log", "w") as daemon_log:  # the child keeps its own descriptor
        daemon = subprocess.Popen(
            [_bin("dagster-daemon"), "run", "-m", MODULE],
            cwd=home,
            env=env,
            stdout=daemon_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        first, last = first_day, first_day + timedelta(hours=hours - 1)
        started = time.monotonic()
        if via == "cli":
            command = [
                _bin("dagster"),
                "job",
                "backfill",
                "-m",
                MODULE,
                "-j",
                "hourly_monitoring",
                "--noprompt",
                "--from",
                f"{first:%Y-%m-%d-%H:00}",
                "--to",
                f"{last:%Y-%m-%d-%H:00}",
            ]
        else:
            command = [sys.executable, "-c", LAUNCH_LIKE_THE_UI, f"{first:%Y-%m-%d-%H:00}", f"{last:%Y-%m-%d-%H:00}"]
        launch = subprocess.run(command, cwd=home, env=env, capture_output=True, text=True)
        if launch.returncode:
            raise RuntimeError(f"launching the backfill failed:\n{launch.stderr[-3000:]}")
        launched_s = time.monotonic() - started

        def daemon_gone() -> str | None:
            return None if daemon.poll() is None else f"dagster-daemon exited; see {workdir / 'daemon.log'}"

        result = await_backfill(home, first, hours, started, timeout_s, daemon_gone)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
    return {**result, "launch_s": launched_s, "cli_output": launch.stdout.strip().splitlines()[-1:]}


def await_backfill(
    home: Path, first: datetime, hours: int, started: float, timeout_s: float, daemon_gone: Callable[[], str | None]
) -> dict:
    """Wait until the instance's latest backfill is done and every run of it has finished, then
    read what it did: its runs, failures, lock errors, and the hours it materialized and checked.
    `daemon_gone` says why waiting is pointless (the daemon exited), else None."""
    import dagster as dg
    from dagster._core.execution.backfill import BULK_ACTION_TERMINAL_STATUSES
    from dagster._core.storage.dagster_run import FINISHED_STATUSES  # the statuses a run ends in
    from dagster._core.storage.tags import BACKFILL_ID_TAG

    with _at_home(home), dg.DagsterInstance.get() as instance:  # the daemon's instance
        (backfill,) = instance.get_backfills(limit=1)
        runs_filter = dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill.backfill_id})
        while True:
            # A run covers one hour or, under the assets' backfill policy, a range of them:
            # done when the daemon has launched them all and every run has finished.
            submitted = instance.get_backfill(backfill.backfill_id)
            runs = instance.get_runs(filters=runs_filter)
            if (
                submitted is not None
                and submitted.status in BULK_ACTION_TERMINAL_STATUSES
                and all(r.status in FINISHED_STATUSES for r in runs)
            ):
                break
            gone = daemon_gone()
            if gone:
                raise RuntimeError(gone)
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"backfill not done after {timeout_s:.0f} s")
            time.sleep(2)
        wall_s = time.monotonic() - started
        # what a user who clicked in the UI waits: from the backfill's creation to its end
        since_created_s = time.time() - backfill.backfill_timestamp
        failed = [r.run_id for r in runs if r.status != dg.DagsterRunStatus.SUCCESS]
        lock_errors = sum(
            1
            for r in runs
            for e in instance.all_logs(r.run_id)
            if "could not set lock" in (e.message or "").lower()
            or (e.dagster_event and "could not set lock" in str(e.dagster_event.event_specific_data).lower())
        )
        # the backfill's hours materialized in every hourly asset (the schedule, which the
        # daemon also runs, may have materialized the hour that just closed: not counted)
        backfilled = {f"{first + timedelta(hours=h):%Y-%m-%d-%H:00}" for h in range(hours)}
        materialized = backfilled.intersection(
            *(instance.get_materialized_partitions(dg.AssetKey(a)) for a in HOURLY_TABLES)
        )
        evaluations = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("hourly_metrics"), "error_rate"), limit=hours * 2
        )
        evaluated_hours = {e.partition for e in evaluations if e.status.value != "PLANNED"} - {None}
        events = sum(len(instance.all_logs(r.run_id)) for r in runs)
        durations = sorted(
            r.end_time - r.start_time
            for r in instance.get_run_records(filters=runs_filter)
            if r.end_time and r.start_time
        )
    return {
        "runs": len(runs),
        "failed_runs": failed,
        "lock_errors": lock_errors,
        "partitions_materialized": len(materialized),
        "evaluated_hours": evaluated_hours,  # error_rate's: each run's first and last, failures, recoveries
        "events": events,
        "hours_per_run": max((_hours_in(r) for r in runs), default=0),
        "wall_s": wall_s,
        "since_created_s": since_created_s,
        "run_median_s": durations[len(durations) // 2] if durations else None,
    }


@contextmanager
def _at_home(home: Path) -> Iterator[None]:
    """DAGSTER_HOME and the working directory set to `home`, as the daemon has them (its
    dagster.yaml has paths relative to the cwd); the caller's put back afterwards."""
    prev, prev_home = os.getcwd(), os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    os.chdir(home)
    try:
        yield
    finally:
        os.chdir(prev)
        if prev_home is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = prev_home


def hours_in_tables(conn, first: datetime, hours: int) -> int:
    """The fewest of the backfill's hours any hourly table holds (quarantine and evaluation_flags
    have rows only for hours with bad lines or flagged calls, so they are left out; their assets'
    partitions are not)."""
    window = {"start": first.replace(tzinfo=None), "end": first.replace(tzinfo=None) + timedelta(hours=hours)}
    counts = [
        one(conn, f"SELECT count(DISTINCT hour) FROM {table} WHERE hour >= $start AND hour < $end", window)[0]
        for table in HOURLY_TABLES
        if table not in ("quarantine", "evaluation_flags")
    ]
    return min(counts)


def _hours_in(run) -> int:
    """How many hours a run covered: its range tags, or one partition."""
    start, end = run.tags.get("dagster/asset_partition_range_start"), run.tags.get("dagster/asset_partition_range_end")
    if not (start and end):
        return 1
    parse = datetime.strptime
    return int((parse(end, "%Y-%m-%d-%H:%M") - parse(start, "%Y-%m-%d-%H:%M")).total_seconds() // 3600) + 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="monitoring-pipeline bench-backfill",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=int, default=7, help="days to backfill (default 7: 168 hours)")
    parser.add_argument("--hours", type=int, help="hours to backfill instead of whole days")
    parser.add_argument("--volume", type=int, default=100, help="mean requests per hour (default 100)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    parser.add_argument(
        "--via",
        choices=("ui", "cli"),
        default="ui",
        help="ui (default): the UI's launchPartitionBackfill mutation, a week of hours per run; "
        "cli: `dagster job backfill`, which launches one run per hour",
    )


def run(args: argparse.Namespace) -> int:
    import duckdb

    hours = args.hours or args.days * 24
    days = -(-hours // 24)
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = today - timedelta(days=days + 1)  # closed days, clear of the schedule's next tick
    workdir = Path(tempfile.mkdtemp(prefix="monitoring-backfill-"))
    try:
        setup = prepare(workdir, first_day, days, args.volume)
        print(
            f"{setup['lines']:,} log lines for {days} day(s) from {first_day:%Y-%m-%d} in {workdir}; "
            f"backfilling {hours} hourly partitions through dagster-daemon ...",
            flush=True,
        )
        result = run_backfill(workdir, first_day, hours, setup["env"], via=args.via)
        with duckdb.connect(str(workdir / "monitoring.duckdb"), read_only=True) as conn:
            hours_in_db = hours_in_tables(conn, first_day, hours)
        print(
            f"runs: {result['runs']} (up to {result['hours_per_run']} hours each), failed: "
            f"{len(result['failed_runs'])}, lock errors in event logs: {result['lock_errors']}, partitions "
            f"materialized in every hourly asset: {result['partitions_materialized']}, hours in every table: "
            f"{hours_in_db}, events in the runs' logs: {result['events']:,} ({result['events'] / hours:.1f} per hour)"
        )
        print(
            f"wall time: {result['wall_s']:.0f} s ({result['wall_s'] / hours:.2f} s per partition, "
            f"{hours / result['wall_s']:.2f} hours/s; CLI launch {result['launch_s']:.0f} s, then "
            f"{result['since_created_s']:.0f} s from the backfill's creation (the UI's click) to its end; "
            f"median run {result['run_median_s'] or 0:.1f} s; load average at the end {os.getloadavg()[0]:.1f})"
        )
        ok = (
            not result["failed_runs"]
            and result["lock_errors"] == 0
            and result["partitions_materialized"] == hours == hours_in_db
        )
        print("OK" if ok else "NOT OK")
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
