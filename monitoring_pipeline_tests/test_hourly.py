"""Range runs (a backfill puts up to a week of hours in one run): every hour is written, checked and
recorded on its own, the alerts read each hour's evaluations, and a single-hour run is unchanged."""

from datetime import timedelta
from types import SimpleNamespace

import dagster as dg
import duckdb
import pytest

from monitoring_pipeline.definitions import defs
from monitoring_pipeline.defs.baselines.assets import metric_anomalies
from monitoring_pipeline.defs.metrics.checks import THRESHOLD_CHECKS
from monitoring_pipeline.defs.review.judge import judge_verdicts
from monitoring_pipeline.lib import hourly
from monitoring_pipeline.lib.hourly import BACKFILL_POLICY, Hours, state_changes
from monitoring_pipeline.resources import DuckDBWarehouse
from monitoring_pipeline_tests.conftest import (
    ALL_ASSETS,
    HOUR,
    ISOLATED_VARS,
    PARTITION,
    LogWriter,
    config_writer,
    folder_resources,
    read_rows,
    record,
)
from monitoring_pipeline_tests.test_alerts import hour_with, key, tick

HOURS = [HOUR + timedelta(hours=i) for i in range(3)]
KEYS = [key(h) for h in HOURS]
REQUESTS = [40, 60, 80]  # a different figure per hour, to tell each hour's metadata apart


def run_range(resources, instance, first: str = KEYS[0], last: str = KEYS[-1]):
    """A run over a range of hours, as a backfill with BACKFILL_POLICY launches it."""
    return dg.materialize(
        ALL_ASSETS,
        resources=resources,
        instance=instance,
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
    )


def write_hours(logs) -> None:
    for hour, n in zip(HOURS, REQUESTS, strict=True):
        hour_with(logs, hour, n=n, errors=5 if hour == HOURS[1] else 0)  # 11:00 breaks error_rate


def latest_metadata(instance, asset: str, partition: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    return {k: getattr(v, "value", v) for k, v in records[0].asset_materialization.metadata.items()}


@pytest.fixture(scope="module")
def ranged(tmp_path_factory):
    """write_hours' three hours run once as one range run, for the tests that read what it did (a
    range run of the hourly assets is ~1.5 s of CPU): its folder (a test's tmp_path layout), its
    resources, the instance that recorded it, and its result. Tests may add to it (an alert tick),
    not change what the others read."""
    root = tmp_path_factory.mktemp("ranged")
    config_writer(root)
    write_hours(LogWriter(root / "logs"))
    resources = folder_resources(root)
    with dg.DagsterInstance.ephemeral() as instance:
        with pytest.MonkeyPatch.context() as env:  # as isolated as a test (a module fixture runs before its autouse)
            for var in ISOLATED_VARS:
                env.delenv(var, raising=False)
            result = run_range(resources, instance)
        yield SimpleNamespace(root=root, resources=resources, instance=instance, result=result)


def test_hourly_range_run_writes_every_hour_in_every_table(ranged):
    query = lambda sql: read_rows(ranged.root / "monitoring.duckdb", sql)  # noqa: E731
    assert ranged.result.success
    for table in ("llm_requests", "hourly_metrics", "hourly_model_metrics", "review_sample"):
        assert query(f"SELECT count(DISTINCT hour) FROM {table}") == [(3,)], table
    assert query("SELECT requests FROM hourly_metrics ORDER BY hour") == [(n,) for n in REQUESTS]


def test_hourly_range_run_records_each_checks_state_changes_at_their_hours(ranged):
    by_check: dict[str, dict[str | None, bool]] = {}
    for evaluation in ranged.result.get_asset_check_evaluations():
        by_check.setdefault(evaluation.check_name, {})[evaluation.partition] = evaluation.passed
    expected = {key.name for a in ALL_ASSETS for key in a.check_keys}  # every check of the hourly assets
    assert {c.name for c in THRESHOLD_CHECKS} | {"quarantine_rate"} <= expected
    assert set(by_check) == expected
    # 11:00 failed, 12:00 recovered: both recorded at their hours, and the first hour.
    assert by_check["error_rate"] == {KEYS[0]: True, KEYS[1]: False, KEYS[2]: True}
    # A check that passed every hour: the range's first and last hour only.
    assert by_check["latency_p99"] == {KEYS[0]: True, KEYS[2]: True}
    for check, hours in by_check.items():
        assert list(hours) == sorted(hours), check  # in order
        assert {KEYS[0], KEYS[2]} <= set(hours), check
        if KEYS[1] in hours:  # a middle hour is recorded when it failed, or recovered from a failure
            assert hours[KEYS[1]] is False or hours[KEYS[0]] is False, check


def test_hourly_range_run_latest_materialization_carries_the_hours_figures(ranged):
    instance = ranged.instance
    for partition, n in zip(KEYS, REQUESTS, strict=True):
        assert latest_metadata(instance, "hourly_metrics", partition)["requests"] == n
        assert latest_metadata(instance, "llm_requests", partition)["rows_ingested"] == n
        assert latest_metadata(instance, "review_sample", partition)["requests"] == n
        assert latest_metadata(instance, "hourly_model_metrics", partition)["hours_in_run"] == len(KEYS)
    assert instance.get_materialized_partitions(dg.AssetKey("review_sample")) == set(KEYS)


def test_hourly_single_hour_run_records_what_it_did_before(logs, resources, instance):
    hour_with(logs, HOUR, n=40)
    result = dg.materialize(ALL_ASSETS, partition_key=PARTITION, resources=resources, instance=instance)
    materializations = result.get_asset_materialization_events()
    assets = {key for a in ALL_ASSETS for key in a.keys}
    assert len(materializations) == len(assets)  # one per asset, no range summary
    assert all(m.partition == PARTITION for m in materializations)
    assert result.asset_materializations_for_node("llm_requests")[0].metadata["rows_ingested"].value == 40
    assert {e.partition for e in result.get_asset_check_evaluations()} == {PARTITION}
    # The evaluation points at its materialization, as an AssetCheckResult returned with it does.
    assert all(e.target_materialization_data for e in result.get_asset_check_evaluations())


def test_hourly_range_run_opens_the_incident_at_its_own_hour(ranged, slack):
    tick(ranged.resources, ranged.instance, HOURS[-1] + timedelta(hours=1, minutes=10))
    incidents = read_rows(
        ranged.root / "alerts.duckdb",
        "SELECT check_name, scope, state, first_partition, last_partition FROM incidents ORDER BY ALL",
    )
    # 11:00 opened it, 12:00 (healthy) resolved it: the range was read hour by hour.
    assert ("error_rate", "all", "resolved", KEYS[1], KEYS[2]) in incidents
    assert all(row[3] in KEYS for row in incidents)


def test_hourly_monitoring_backfills_a_week_per_run():
    """Every hourly asset in the job carries the policy: one without it would put the whole
    backfill back to one hour per run."""
    job = defs.resolve_job_def("hourly_monitoring")
    assert job.backfill_policy == BACKFILL_POLICY
    assert BACKFILL_POLICY.max_partitions_per_run == 168  # MONITORING_BACKFILL_HOURS_PER_RUN unset


def test_hourly_range_run_of_a_subset_reports_only_what_was_selected(logs, resources, instance, query):
    write_hours(logs)
    result = dg.materialize(
        ALL_ASSETS,
        selection=["llm_requests", "hourly_metrics"],  # not hourly_model_metrics, though the same step writes it
        resources=resources,
        instance=instance,
        tags={"dagster/asset_partition_range_start": KEYS[0], "dagster/asset_partition_range_end": KEYS[-1]},
    )
    assert result.success
    assert {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()} == {
        "llm_requests",
        "hourly_metrics",
    }
    assert query("SELECT count(DISTINCT hour) FROM hourly_metrics") == [(3,)]


def test_hourly_range_run_records_first_last_failures_and_recoveries():
    passed = [True, True, False, False, True, True, True, False]
    history = [(f"h{i}", dg.AssetCheckResult(passed=p)) for i, p in enumerate(passed)]
    assert [key for key, _ in state_changes(history)] == ["h0", "h2", "h3", "h4", "h7"]
    assert [key for key, _ in state_changes(history[:1])] == ["h0"]


HOURLY_ASSETS = [*ALL_ASSETS, metric_anomalies, judge_verdicts]
TABLES = {  # every table the hourly assets write, with the columns that differ between any two runs
    "llm_requests": (),
    "quarantine": ("quarantined_at",),
    "hourly_metrics": (),
    "hourly_model_metrics": (),
    "evaluation_flags": (),
    "hourly_evaluations": (),
    "metric_anomalies": (),
    "review_sample": (),
}
VOLATILE_METADATA = {"hours_in_run", "evaluation_seconds"}


def test_hourly_backfill_hours_per_run_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MONITORING_BACKFILL_HOURS_PER_RUN", "168")
    assert hourly._hours_per_run() == 168
    for bad in ("0", "-1", "1.5", "day"):
        monkeypatch.setenv("MONITORING_BACKFILL_HOURS_PER_RUN", bad)
        with pytest.raises(ValueError, match="MONITORING_BACKFILL_HOURS_PER_RUN"):
            hourly._hours_per_run()


def test_hourly_windows_hold_at_most_the_cap_each():
    hours = Hours(KEYS + ["2026-03-01-13:00"], HOURS + [HOURS[-1] + timedelta(hours=1)])
    rows = {HOURS[0]: 40, HOURS[1]: 60, HOURS[2]: 500}  # the last hour holds nothing
    assert [w.keys for w in hours.windows(rows, 100)] == [KEYS[:2], [KEYS[2]], ["2026-03-01-13:00"]]
    assert [w.keys for w in hours.windows(rows, 99)] == [[KEYS[0]], [KEYS[1]], [KEYS[2]], ["2026-03-01-13:00"]]
    assert [w.keys for w in hours.windows({}, 1)] == [hours.keys]
    assert [w.window for w in hours.windows(rows, 100)][1] == {"start": HOURS[2], "end": HOURS[2] + timedelta(hours=1)}


@pytest.mark.slow  # every hourly asset, three hours, hour by hour and as one run, twice
def test_hourly_range_run_writes_and_records_what_single_hour_runs_do(logs, resources, tmp_path, monkeypatch):
    """The core property of range runs: the same rows in every table, the same metadata per hour,
    and each recorded check evaluation the same as the single-hour run's for that hour, whether the
    run's statements cover all of its hours (one window) or a few at a time (hours of many calls:
    windows of 2 hours and 1, 40 + 60 + 1 calls then 80, under a cap of 110)."""
    write_hours(logs)
    logs.lines(['{"request_id": "broken', "[]"], HOURS[2], name="bad.jsonl")  # quarantine has rows too
    refusal = record(0, HOURS[0], request_id="refused", response="I'm sorry, but I can't help with that.")
    logs.records([refusal], HOURS[0], name="flagged.jsonl")  # and evaluation_flags
    single = {**resources, "warehouse": DuckDBWarehouse(database=str(tmp_path / "single.duckdb"))}
    single_evaluations = {}
    with dg.DagsterInstance.ephemeral() as alone:
        for partition in KEYS:
            result = dg.materialize(HOURLY_ASSETS, partition_key=partition, resources=single, instance=alone)
            single_evaluations |= {(e.check_name, partition): e for e in result.get_asset_check_evaluations()}
        for rows_per_statement in (hourly.ROWS_PER_STATEMENT, 110):
            monkeypatch.setattr(hourly, "ROWS_PER_STATEMENT", rows_per_statement)
            db = tmp_path / f"ranged-{rows_per_statement}.duckdb"
            resources = {**single, "warehouse": DuckDBWarehouse(database=str(db))}
            with dg.DagsterInstance.ephemeral() as instance:
                ranged = dg.materialize(HOURLY_ASSETS, resources=resources, instance=instance, tags=_range_tags())
                messages = [e.user_message for e in instance.all_logs(ranged.run_id)]
                windowed = sum("3 hours in 2 windows of at most 110 rows" in m for m in messages)
                assert windowed == (0 if rows_per_statement > 1000 else 5)  # the steps after ingest (it weighs bytes)
                for partition in KEYS:
                    for asset in (k.to_user_string() for a in HOURLY_ASSETS for k in a.keys):
                        same = _metadata(instance, asset, partition) == _metadata(alone, asset, partition)
                        assert same, (rows_per_statement, asset, partition)
            _assert_same_tables(db, tmp_path / "single.duckdb", rows_per_statement)
            for e in ranged.get_asset_check_evaluations():
                twin = single_evaluations[(e.check_name, e.partition)]
                assert (e.passed, e.severity, e.description) == (twin.passed, twin.severity, twin.description), (
                    rows_per_statement,
                    e.check_name,
                )
                assert _plain(e.metadata) == _plain(twin.metadata), (rows_per_statement, e.check_name)


def _assert_same_tables(ranged_db, single_db, rows_per_statement: int) -> None:
    with duckdb.connect(str(ranged_db), read_only=True) as a, duckdb.connect(str(single_db), read_only=True) as b:
        for table, volatile in TABLES.items():
            columns = ", ".join(
                c
                for (c,) in a.execute(f"SELECT name FROM pragma_table_info('{table}')").fetchall()
                if c not in volatile
            )
            rows = f"SELECT {columns} FROM {table} ORDER BY ALL"
            assert a.execute(rows).fetchall() == b.execute(rows).fetchall(), (rows_per_statement, table)
            hours = a.execute(f"SELECT count(DISTINCT hour) FROM {table}").fetchone()[0]
            assert hours == {"quarantine": 1, "evaluation_flags": 1}.get(table, 3), (rows_per_statement, table)


def _range_tags() -> dict:
    return {"dagster/asset_partition_range_start": KEYS[0], "dagster/asset_partition_range_end": KEYS[-1]}


def _plain(metadata) -> dict:
    return {k: getattr(v, "value", v) for k, v in metadata.items() if k not in VOLATILE_METADATA}


def _metadata(instance, asset: str, partition: str) -> dict:
    return _plain(latest_metadata(instance, asset, partition))
