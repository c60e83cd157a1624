"""`monitoring-pipeline bench`: a smoke test at 1,000 rows, one round (it reports the timings, peak
memory and row counts; no timing assertions: the figures live in the README), and the report of
several rounds (best of, peak, b/a per round) checked on given figures, without running a phase."""

import copy
import json
import re

import pytest

from monitoring_pipeline.cli import main
from monitoring_pipeline.tools.bench import best_of, report, storage_report


@pytest.mark.slow
def test_bench_reports_three_timings_and_row_counts(tmp_path, capsys):
    figures = tmp_path / "bench.json"
    assert (
        main(["bench", "--rows", "1000", "--repeat", "1", "--dir", str(tmp_path / "work"), "--json", str(figures)]) == 0
    )
    out = capsys.readouterr().out
    for label in ("(a) bare DuckDB", "(b) hourly materialization", "(b') the same, bad lines inside", "(c) pandas"):
        line = next(line for line in out.splitlines() if label in line)
        assert re.search(r"[\d.]+ s \(work +[\d.]+ s\) +peak +[\d,]+ MB +rows 1,000$", line), line
    assert "b/a = " in out and "b'/a = " in out and "c/b = " in out and "B/request" in out
    assert "(best of" not in out and "b/a per round" not in out  # one round: nothing to pick from
    results = json.loads(figures.read_text())
    assert {name: results[name]["rows"] for name in ("duckdb", "pipeline", "pipeline_inside", "pandas")} == {
        "duckdb": 1000,
        "pipeline": 1000,
        "pipeline_inside": 1000,
        "pandas": 1000,
    }
    assert results["pipeline"]["quarantined"] == results["pipeline_inside"]["quarantined"] == 2
    assert "evaluators: " in out and results["pipeline"]["flags"] > 0  # the evaluators ran inside (b)
    # a phase's time runs from its process start to its figures, so it holds the call it times
    for name in ("duckdb", "pipeline", "pipeline_inside", "pandas", "storage"):
        assert results[name]["seconds"] > results[name]["work_seconds"] > 0, name
    assert results["storage"]["bytes_after"] < results["storage"]["bytes_before"]
    assert list((tmp_path / "work").iterdir()) == []  # generated data is removed unless --keep


def _run(seconds: float, work: float, peak_mb: int, **extra) -> dict:
    return {"seconds": seconds, "work_seconds": work, "peak_rss_bytes": peak_mb * 1_000_000, "rows": 1000, **extra}


def _pipeline(review_rows: int, evaluation_seconds: float, flags: int, db_bytes: int) -> dict:
    return {
        "quarantined": 2,
        "review_rows": review_rows,
        "evaluation_seconds": evaluation_seconds,
        "flags": flags,
        "checks": 13,
        "db_bytes": db_bytes,
    }


# Two rounds, as --repeat 2 collects them. No phase's best run is in the same round as every other's,
# its peak is never the highest, and the slower run has the lower work time or other counts, so each
# figure printed below can come only from the run it should.
ROUNDS = {
    "duckdb": [_run(1.6, 0.8, 250), _run(2.5, 0.5, 300)],
    "pipeline": [
        _run(4.8, 3.9, 650, **_pipeline(999, 0.9, 1, 9_000_000)),
        _run(4.0, 3.2, 600, **_pipeline(120, 0.4, 1234, 3_100_000)),
    ],
    "pipeline_inside": [
        _run(5.2, 4.0, 700, **_pipeline(120, 0.5, 1234, 3_200_000)),
        _run(5.5, 4.2, 690, **_pipeline(120, 0.5, 1234, 3_200_000)),
    ],
    "pandas": [_run(3.0, 2.5, 900, models=2), _run(2.0, 1.7, 800, models=2)],
}


def test_bench_report_of_two_rounds_gives_each_phase_its_best_run_its_highest_peak_and_b_over_a_per_round():
    runs = copy.deepcopy(ROUNDS)
    assert report(runs).splitlines() == [
        # best of: (a) round 1, (b) round 2, (b') round 1, (c) round 2, each with its own work time;
        # peak: the other round's where that is higher (a, b, c)
        "  (a) bare DuckDB read_json into a table                  1.60 s (work   0.80 s)  peak    300 MB  "
        "rows 1,000  (best of 1.6, 2.5 s)",
        "  (b) hourly materialization (ingest+metrics+evals+review)    4.00 s (work   3.20 s)  peak    650 MB  "
        "rows 1,000  (best of 4.8, 4.0 s)",
        "  (b') the same, bad lines inside the big file            5.20 s (work   4.00 s)  peak    700 MB  "
        "rows 1,000  (best of 5.2, 5.5 s)",
        "  (c) pandas read_json(lines=True) + groupby              2.00 s (work   1.70 s)  peak    900 MB  "
        "rows 1,000  (best of 3.0, 2.0 s)",
        # best/best: b/a 4.0/1.6, work 3.2/0.8; b'/a 5.2/1.6, work 4.0/0.8
        "  b/a = 2.50 (target <= 1.5); work only (the read or materialize call alone, no process start-up) 4.00; "
        "b'/a = 3.25 (work only 5.00)",
        # per round: 4.8/1.6 = 3.00, 4.0/2.5 = 1.60; sorted, median (1.60 + 3.00) / 2
        "  b/a per round, sorted: 1.60, 3.00 (median 2.30)",
        # 2.0/4.0, work 1.7/3.2 = 0.53125
        "  c/b = 0.50; work only 0.53",
        # (b)'s best run's counts: 3.1 MB / 1,000 rows
        "  pipeline: 1,000 rows ingested, 2 quarantined, 120 in the review sample, 13 check evaluations; "
        "warehouse 3 MB = 3,100 B/request",
        # 0.4 / 1.6 and 0.4 / 0.8
        "  evaluators: 0.40 s of (b) for 1,234 flags = 0.25 x (a) (target <= 0.5), 0.50 x (a)'s work",
    ]
    results = best_of(runs)
    assert results == {
        "duckdb": {**ROUNDS["duckdb"][0], "peak_rss_bytes": 300_000_000},
        "pipeline": {**ROUNDS["pipeline"][1], "peak_rss_bytes": 650_000_000},
        "pipeline_inside": ROUNDS["pipeline_inside"][0],
        "pandas": {**ROUNDS["pandas"][1], "peak_rss_bytes": 900_000_000},
    }
    assert runs == ROUNDS  # the runs themselves keep their own peaks

    one_round = report({name: phase_runs[:1] for name, phase_runs in ROUNDS.items() if name != "pandas"})
    assert "(best of" not in one_round and "b/a per round" not in one_round and "c/b" not in one_round
    assert one_round.splitlines()[0] == (
        "  (a) bare DuckDB read_json into a table                  1.60 s (work   0.80 s)  peak    250 MB  rows 1,000"
    )
    storage = {"bytes_before": 77_000_000, "bytes_after": 32_000_000, "seconds": 1.34, "peak_rss_bytes": 412_000_000}
    assert storage_report(storage, 1_000_000) == (
        "  storage: 77 B/request with prompt/response; 32 B/request after storage_retention dropped the text and "
        "compacted (1.3 s, peak 412 MB)"
    )
