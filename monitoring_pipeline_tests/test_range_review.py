"""Range runs of the evaluators, the review sample and the LLM judge (each runs once over its window
of hours): a backfill's run writes the same rows and files, and records the same metadata and check
results per hour, as single-hour runs of those hours."""

import json
from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from monitoring_pipeline.config import load_config
from monitoring_pipeline.defs.evaluation.assets import evaluation_assets
from monitoring_pipeline.defs.ingest.assets import llm_requests
from monitoring_pipeline.defs.review.judge import judge_verdicts
from monitoring_pipeline.defs.review.sample import review_sample
from monitoring_pipeline.resources import DuckDBWarehouse
from monitoring_pipeline_tests.conftest import HOUR, record
from monitoring_pipeline_tests.judge_server import JudgeServer
from monitoring_pipeline_tests.test_alerts import key

# Range runs against runs of each hour alone: several hours materialized twice (make test runs it).
pytestmark = pytest.mark.slow

HOURS = [HOUR + timedelta(hours=i) for i in range(4)]
KEYS = [key(h) for h in HOURS]
ASSETS = [llm_requests, evaluation_assets(load_config()), review_sample, judge_verdicts]
TABLES = {  # the tables these assets write, without the columns that differ between any two runs
    "evaluation_flags": (),
    "hourly_evaluations": (),
    "review_sample": (),
    "judge_verdicts": ("judged_at", "latency_ms"),
}
VOLATILE_METADATA = {"hours_in_run", "evaluation_seconds", "latency_p50_ms"}
CASES = [
    json.loads(line) for line in (Path(__file__).parent / "fixtures" / "evaluators.jsonl").read_text().splitlines()
]


def write_hours(logs) -> None:
    """Four different hours: the evaluators' cases, an hour without logs, every stratum with more
    members than its quota, and calls that reuse the first hour's request ids (each hour is its own)."""
    models = ("chat-large", "code-small")
    first = [
        record(
            i,
            HOURS[0],
            model=models[i % 2],
            **{c["field"]: c["text"]},
            output_type="json" if c["evaluator"] == "invalid_json" else None,
        )
        for i, c in enumerate(CASES)
    ]
    third = [record(i, HOURS[2], model=models[i % 2], response="wrong answer" if i % 4 else "ok") for i in range(150)]
    third += [record(200 + i, HOURS[2], safety_flags=["pii"]) for i in range(5)]
    third += [record(210 + i, HOURS[2], status="error", error_type="Timeout") for i in range(6)]
    third += [record(220 + i, HOURS[2], feedback=1 + i % 2) for i in range(4)]
    third += [record(230, HOURS[2], latency_ms=20_000.0), record(231, HOURS[2], latency_ms=19_000.0)]
    third += [record(240 + i, HOURS[2], model="tiny", response="Mail me at jane@example.com") for i in range(3)]
    third += [record(250 + i, HOURS[2], response="I'm sorry, but I can't help with that.") for i in range(6)]
    fourth = [  # every third of the first hour's ids, most of them with other texts (refusals among them)
        record(i, HOURS[3], request_id=f"req-10-{i:05d}", model=models[i % 2], response=text)
        for i, text in zip(range(0, 120, 3), ["wrong, sorry", "I must decline.", "fine"] * 40, strict=False)
    ]
    logs.records(first, HOURS[0])
    logs.records(third, HOURS[2])
    logs.records(fourth, HOURS[3])


def recorded(tmp_path, instance, name: str, results: list[dg.ExecuteInProcessResult]) -> dict:
    """What a run left behind: the tables' rows, the review files, each hour's latest metadata per
    asset, and every check evaluation by (check, hour)."""
    with duckdb.connect(str(tmp_path / f"{name}.duckdb"), read_only=True) as conn:
        rows = {}
        for table, volatile in TABLES.items():
            names = [c for (c,) in conn.execute(f"SELECT name FROM pragma_table_info('{table}')").fetchall()]
            columns = ", ".join(c for c in names if c not in volatile)
            rows[table] = conn.execute(f"SELECT {columns} FROM {table} ORDER BY ALL").fetchall()
    review = tmp_path / "review"
    files = {str(p.relative_to(review)): p.read_bytes() for p in sorted(review.rglob("*")) if p.is_file()}
    metadata = {}
    for asset in ("evaluation_flags", "hourly_evaluations", "review_sample", "judge_verdicts"):
        for partition in KEYS:
            (latest,) = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
            ).records
            metadata[asset, partition] = _plain(latest.asset_materialization.metadata)
    evaluations = {
        (e.check_name, e.partition): (e.passed, e.severity, e.description, _plain(e.metadata))
        for result in results
        for e in result.get_asset_check_evaluations()
    }
    return {"rows": rows, "files": files, "metadata": metadata, "evaluations": evaluations}


def _plain(metadata) -> dict:
    return {k: getattr(v, "value", v) for k, v in metadata.items() if k not in VOLATILE_METADATA}


@pytest.fixture
def judge_on(monkeypatch):
    server = JudgeServer().start()
    monkeypatch.setenv("MONITORING_JUDGE_URL", server.url)
    monkeypatch.setenv("MONITORING_JUDGE_MODEL", "judge-1")
    yield server
    server.stop()


def run(tmp_path, resources, name: str, ranged: bool) -> dict:
    """Materialize ASSETS over KEYS, as one range run or hour by hour, into a warehouse and an
    instance of their own; the review folder is emptied first."""
    for path in sorted((tmp_path / "review").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    resources = {**resources, "warehouse": DuckDBWarehouse(database=str(tmp_path / f"{name}.duckdb"))}
    with dg.DagsterInstance.ephemeral() as instance:
        if ranged:
            tags = {"dagster/asset_partition_range_start": KEYS[0], "dagster/asset_partition_range_end": KEYS[-1]}
            results = [dg.materialize(ASSETS, resources=resources, instance=instance, tags=tags)]
        else:
            results = [dg.materialize(ASSETS, partition_key=k, resources=resources, instance=instance) for k in KEYS]
        return recorded(tmp_path, instance, name, results)


def test_range_run_of_evaluations_sample_and_judge_equals_single_hour_runs(
    logs, resources, config_file, tmp_path, judge_on
):
    config_file(
        {
            "review": {
                "output_dir": str(tmp_path / "review"),
                "sample_rate": 0.05,
                "max_per_hour": 25,
                "min_per_model": 2,
                "preview_rows": 5,
                "strata": {
                    "pii_leak": 3,
                    "safety_flag": 2,
                    "error": 3,
                    "evaluator_flag": 4,
                    "low_feedback": 2,
                    "slow": 1,
                },
            },
            "judge": {
                "backoff_s": 0.001,
                "max_calls_per_hour": 30,  # two rubrics x 25 rows: the cap is reached in some hours
                "rubrics": [
                    {"name": "quality", "instruction": "Is it correct?"},
                    {"name": "tone", "instruction": "Is it polite?"},
                ],
            },
        }
    )
    write_hours(logs)
    single = run(tmp_path, resources, "single", ranged=False)
    ranged = run(tmp_path, resources, "ranged", ranged=True)

    for table, rows in single["rows"].items():
        assert ranged["rows"][table] == rows, table
    assert ranged["files"] == single["files"]
    assert ranged["metadata"] == single["metadata"]
    for (check, partition), evaluation in ranged["evaluations"].items():
        assert evaluation == single["evaluations"][check, partition], (check, partition)
    checks = {check for check, _ in single["evaluations"]}
    assert {(c, p) for c in checks for p in (KEYS[0], KEYS[-1])} <= set(ranged["evaluations"])

    # The hours differ, so the comparison above has something to compare.
    hours = {table: {r[0] for r in rows} for table, rows in single["rows"].items()}
    assert len(hours["hourly_evaluations"]) == 4  # the hour without logs has its `all` rows
    assert hours["review_sample"] == hours["judge_verdicts"] and len(hours["review_sample"]) == 3
    assert len(hours["evaluation_flags"]) == 3
    capped = single["metadata"]["judge_verdicts", KEYS[2]]["capped"]
    assert capped > 0 and single["metadata"]["judge_verdicts", KEYS[3]]["capped"] == 0
    assert single["metadata"]["review_sample", KEYS[1]]["rows"] == 0
    assert len(single["files"]) == 2 * 4 and b"[EMAIL]" in single["files"]["dt=2026-03-01/hour=12/review_sample.csv"]
    assert {passed for passed, *_ in single["evaluations"].values()} == {True, False}
