"""Smoke test of `monitoring-pipeline bench` at 1,000 rows: it reports the timings, peak
memory and row counts (no timing assertions: the figures live in the README)."""

import json
import re

import pytest

from monitoring_pipeline.cli import main

pytestmark = pytest.mark.slow


def test_bench_reports_three_timings_and_row_counts(tmp_path, capsys):
    figures = tmp_path / "bench.json"
    assert (
        main(["bench", "--rows", "1000", "--repeat", "2", "--dir", str(tmp_path / "work"), "--json", str(figures)]) == 0
    )
    out = capsys.readouterr().out
    for label in ("(a) bare DuckDB", "(b) hourly materialization", "(b') the same, bad lines inside", "(c) pandas"):
        line = next(line for line in out.splitlines() if label in line)
        assert re.search(
            r"[\d.]+ s \(work +[\d.]+ s\) +peak +[\d,]+ MB +rows 1,000 +\(best of [\d.]+, [\d.]+ s\)$", line
        ), line
    assert "b/a = " in out and "b'/a = " in out and "c/b = " in out and "B/request" in out
    assert re.search(r"b/a per round, sorted: [\d.]+, [\d.]+ \(median [\d.]+\)", out)
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
