"""`monitoring-pipeline bench --rows N`: one hour of realistic logs, then on the same file
(a) bare DuckDB read_json into a table, the floor; (b) this project's whole hourly
materialization through Dagster; (c) the naive pandas way. Each runs in its own child process,
so its time and peak memory (max RSS, from the kernel) are its own. A phase is timed from starting
its process until it has written its figures: the interpreter's teardown after that (up to 0.8 s
once Dagster is imported) delays no run and no reader. On a shared machine use --repeat: each
phase's fastest run is its cost without the neighbours' noise.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOUR = "2026-03-01 10:00:00"
PARTITION = "2026-03-01-10:00"
# A realistic hour has a few of these; they exercise the quarantine path. They go in a file of their
# own beside the big one: pd.read_json raises on the first bad line, so (a) and (c) read the big
# file only (pandas' best case) while (b) ingests the whole hour folder. (b') ingests a copy of the
# big file with the bad lines in its middle, where they cost ingest the most.
BAD_LINES = [
    '{"request_id": "bad-json", "model": "chat-large", "latency_ms": 10,,}',
    '{"request_id": "neg", "timestamp": "2026-03-01T10:30:00+00:00", "model": "chat-large", "latency_ms": -5, '
    '"input_tokens": 1, "output_tokens": 1, "status": "ok"}',
]
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "you",
    "that",
    "it",
    "he",
    "was",
    "for",
    "on",
    "are",
    "as",
    "with",
    "his",
    "they",
    "at",
    "be",
    "this",
    "have",
    "from",
    "or",
    "one",
    "had",
    "by",
    "word",
    "but",
    "not",
    "what",
    "all",
    "were",
    "we",
    "when",
    "your",
    "can",
    "said",
    "there",
    "use",
    "an",
    "each",
    "which",
    "she",
    "do",
    "how",
    "their",
    "if",
    "will",
    "up",
    "other",
    "about",
    "out",
    "many",
    "then",
    "them",
    "these",
    "so",
    "some",
    "her",
    "would",
    "make",
    "like",
    "him",
    "into",
    "time",
    "has",
    "look",
    "two",
    "more",
    "write",
    "go",
    "see",
    "number",
    "no",
    "way",
    "could",
    "people",
    "my",
    "than",
    "first",
    "water",
    "been",
    "call",
    "who",
    "oil",
    "its",
    "now",
    "find",
    "long",
    "down",
    "day",
    "did",
    "get",
    "come",
    "made",
    "may",
    "part",
    "model",
    "prompt",
    "response",
    "token",
    "latency",
    "answer",
    "question",
    "summary",
    "code",
    "function",
    "error",
    "customer",
    "order",
    "refund",
    "account",
    "password",
    "invoice",
    "schedule",
    "meeting",
    "report",
    "analysis",
    "translate",
    "explain",
]

# The hour's logs, written by DuckDB itself: ~0.9 KB per line, texts cut from a pseudo-English corpus.
GENERATE = """
COPY (
    SELECT
        'req-' || lpad(i::VARCHAR, 9, '0') || '-' || left(md5(i::VARCHAR), 8) AS request_id,
        strftime($hour::TIMESTAMP + to_microseconds((i * 3600000000 // $rows)::BIGINT),
                 '%Y-%m-%dT%H:%M:%S.%f') || '+00:00' AS "timestamp",
        CASE WHEN h % 10 < 7 THEN 'chat-large' ELSE 'code-small' END AS model,
        round(150 + (h % 1000) * 1.5 + (h % 7) * (h % 13) * 10, 1)::DOUBLE AS latency_ms,
        (20 + h % 2000)::BIGINT AS input_tokens,
        CASE WHEN h % 100 = 0 THEN 0 ELSE 10 + (h // 7) % 800 END::BIGINT AS output_tokens,
        prompt_len::BIGINT AS input_length,
        response_len::BIGINT AS output_length,
        'user-' || lpad(((h // 11) % 5000)::VARCHAR, 4, '0') AS user_id,
        CASE WHEN h % 100 = 0 THEN 'error' ELSE 'ok' END AS status,
        CASE WHEN h % 100 = 0 THEN 'timeout' END AS error_type,
        CASE WHEN (h // 3) % 12 = 0 THEN (1 + (h // 5) % 5)::INTEGER END AS feedback,
        CASE WHEN h % 20000 = 1 THEN ['pii_leak'] ELSE []::VARCHAR[] END AS safety_flags,
        substr($corpus, 1 + (h // 17) % 60000, prompt_len) AS prompt,
        CASE WHEN h % 200 = 5 THEN 'I''m sorry, but I can''t help with that. ' ELSE '' END
            || substr($corpus, 1 + (h // 19) % 60000, response_len) AS response,
        CASE WHEN h % 50 = 3 THEN 'length' ELSE 'stop' END AS finish_reason,  -- 2 % truncated
        CASE WHEN h % 100 = 7 THEN 'json' END AS output_type  -- 1 % asked for JSON (and got prose)
    FROM (SELECT i, h, 150 + h % 350 AS prompt_len, 100 + (h // 400) % 250 AS response_len
          FROM (SELECT i, (hash(i) % 4294967296)::BIGINT AS h FROM range($rows) t(i)))
) TO '{path}' (FORMAT json)
"""


def corpus(chars: int = 70000) -> str:
    rng = random.Random(42)
    text, size = [], 0
    while size < chars:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 18))).capitalize() + ". "
        text.append(sentence)
        size += len(sentence)
    return "".join(text)


def generate(path: Path, rows: int) -> None:
    import duckdb

    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as conn:
        conn.execute(
            GENERATE.replace("{path}", str(path).replace("'", "''")), {"rows": rows, "hour": HOUR, "corpus": corpus()}
        )
    path.with_name("bad.jsonl").write_text("\n".join(BAD_LINES) + "\n")
    inside = _inside_copy(path)
    inside.parent.mkdir(parents=True, exist_ok=True)
    with path.open("rb") as src, inside.open("wb") as dst:
        rest = _copy_lines(src, dst, rows // 2)
        dst.write("".join(f"{bad}\n" for bad in BAD_LINES).encode())
        dst.write(rest)
        shutil.copyfileobj(src, dst)


def _copy_lines(src, dst, lines: int, block_size: int = 1 << 24) -> bytes:
    """Copy the first `lines` lines of src to dst, 16 MB at a time; return the rest of the last block read."""
    while block := src.read(block_size):
        if block.count(b"\n") < lines:
            lines -= block.count(b"\n")
            dst.write(block)
            continue
        rest = block.split(b"\n", lines)[-1]
        dst.write(block[: len(block) - len(rest)])
        return rest
    return b""


def _inside_copy(path: Path) -> Path:
    """logs/dt=.../hour=.../bench.jsonl -> logs_inside/dt=.../hour=.../bench.jsonl"""
    logs = next(p for p in path.parents if p.name == "logs")
    return logs.with_name("logs_inside") / path.relative_to(logs)


# Each contestant's database; run_phase empties it first, so a repeat does not begin by deleting
# the last run's rows. `storage` works on the pipeline's.
DATABASES = {"duckdb": "floor.duckdb", "pipeline": "monitoring.duckdb", "pipeline_inside": "monitoring_inside.duckdb"}
# The Dagster instance the runs record their events in: created before any phase is timed, as a
# deployment's instance exists before its runs (creating the storage costs a run 0.5 s more).
DAGSTER_HOME = "dagster_home"


def prepare_instance(work: Path) -> None:
    (work / DAGSTER_HOME).mkdir(exist_ok=True)
    (work / DAGSTER_HOME / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # as the repo's
    _instance(work).dispose()  # creates its storage


def _instance(work: Path):
    import dagster as dg

    return dg.DagsterInstance.from_config(str(work / DAGSTER_HOME))


# ---- the three contestants; each runs in a child process: python -m monitoring_pipeline.tools.bench _phase ...


def phase_duckdb(work: Path, log_file: Path) -> dict:
    import duckdb

    started = time.monotonic()
    with duckdb.connect(str(work / DATABASES["duckdb"])) as conn:
        conn.execute(
            "CREATE OR REPLACE TABLE raw AS SELECT * FROM read_json($f, format = 'newline_delimited', "
            "ignore_errors = true)",
            {"f": str(log_file)},
        )
        (rows,) = conn.execute("SELECT count(*) FROM raw").fetchall()[0]
    return {"rows": rows, "work_seconds": time.monotonic() - started}


def phase_pipeline(work: Path, log_file: Path, logs: str = "logs", database: str = DATABASES["pipeline"]) -> dict:
    import dagster as dg

    from monitoring_pipeline.definitions import defs
    from monitoring_pipeline.resources import DuckDBWarehouse, LogSource, MonitoringSettings

    config = work / "config.yaml"
    config.write_text(f"review: {{output_dir: {work / 'review'}}}\n")
    db = work / database
    resources = {
        **(defs.resources or {}),
        "warehouse": DuckDBWarehouse(database=str(db)),
        "logs": LogSource(log_dir=str(work / logs)),
        "settings": MonitoringSettings(config_path=str(config)),
    }
    with _instance(work) as instance:
        started = time.monotonic()
        result = dg.materialize(
            _pipeline_assets(), partition_key=PARTITION, resources=resources, instance=instance, raise_on_error=True
        )
        seconds = time.monotonic() - started
    meta = {
        m.asset_key.to_user_string(): m.metadata
        for e in result.get_asset_materialization_events()
        for m in [e.step_materialization_data.materialization]
    }
    checks = result.get_asset_check_evaluations()
    return {
        "rows": meta["llm_requests"]["rows_ingested"].value,
        "quarantined": meta["llm_requests"]["rows_quarantined"].value,
        "review_rows": meta["review_sample"]["rows"].value,
        "evaluation_seconds": meta["evaluation_flags"]["evaluation_seconds"].value,
        "flags": meta["evaluation_flags"]["flags"].value,
        "checks": len(checks),
        "db_bytes": db.stat().st_size,
        "work_seconds": seconds,
    }


def _pipeline_assets() -> list:
    """The assets the hourly_monitoring job runs, as materialize() wants them."""
    from monitoring_pipeline.config import get_config
    from monitoring_pipeline.defs.evaluation.assets import evaluation_assets
    from monitoring_pipeline.defs.ingest.assets import llm_requests
    from monitoring_pipeline.defs.metrics.assets import hourly_metrics
    from monitoring_pipeline.defs.review.sample import review_sample

    return [llm_requests, hourly_metrics, evaluation_assets(get_config()), review_sample]


def phase_pandas(work: Path, log_file: Path) -> dict:
    import pandas as pd

    started = time.monotonic()
    df = pd.read_json(log_file, lines=True)
    df = df[df["latency_ms"].notna()]
    by_model = df.groupby("model").agg(
        requests=("request_id", "count"),
        latency_avg=("latency_ms", "mean"),
        latency_p99=("latency_ms", lambda s: s.quantile(0.99)),
        errors=("status", lambda s: (s == "error").sum()),
        tokens=("input_tokens", "sum"),
    )
    return {"rows": len(df), "models": len(by_model), "work_seconds": time.monotonic() - started}


def phase_storage(work: Path, log_file: Path) -> dict:
    """Not a contestant: what the warehouse stores per request, then after storage_retention drops
    the texts (text_days: 0) and compacts the file."""
    import dagster as dg

    from monitoring_pipeline.defs.maintenance.retention import storage_retention
    from monitoring_pipeline.resources import DuckDBWarehouse, MonitoringSettings

    config = work / "retention.yaml"
    config.write_text("retention: {text_days: 0, quarantine_days: 0, compact: true}\n")
    db = work / DATABASES["pipeline"]
    before = db.stat().st_size
    started = time.monotonic()
    with _instance(work) as instance:
        result = dg.materialize(
            [storage_retention],
            instance=instance,
            resources={
                "warehouse": DuckDBWarehouse(database=str(db)),
                "settings": MonitoringSettings(config_path=str(config)),
            },
            run_config={"ops": {"storage_retention": {"config": {"as_of": "2100-01-01T00:00:00+00:00"}}}},
        )
    meta = result.asset_materializations_for_node("storage_retention")[0].metadata
    return {
        "rows": meta["texts_dropped"].value,
        "bytes_before": before,
        "bytes_after": db.stat().st_size,
        "work_seconds": time.monotonic() - started,
    }


def phase_pipeline_inside(work: Path, log_file: Path) -> dict:
    return phase_pipeline(work, log_file, logs="logs_inside", database=DATABASES["pipeline_inside"])


PHASES = {
    "duckdb": phase_duckdb,
    "pipeline": phase_pipeline,
    "pipeline_inside": phase_pipeline_inside,
    "pandas": phase_pandas,
    "storage": phase_storage,
}


def run_phase(name: str, work: Path, log_file: Path) -> dict:
    """Run one phase in a child; time it, and read its peak RSS from the kernel's rusage."""
    out = work / f"{name}.json"
    if name in DATABASES:
        from monitoring_pipeline.lib.db import remove_database  # here, not in the children: it imports Dagster

        remove_database(work / DATABASES[name])
    os.sync()  # the OS writing back earlier phases' files (or the generated logs) would slow this one
    started = time.monotonic()
    with (work / f"{name}.log").open("w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "monitoring_pipeline.tools.bench",
                "_phase",
                name,
                str(work),
                str(log_file),
                str(out),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        tail = (work / f"{name}.log").read_text()[-3000:]
        raise RuntimeError(f"phase {name} failed ({proc.returncode}):\n{tail}")
    figures = json.loads(out.read_text())
    return {"seconds": figures.pop("done_at") - started, "peak_rss_bytes": usage.ru_maxrss * 1024, **figures}


def _mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB"


def best_of(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Each phase's fastest run, with the highest peak of all its runs (new dicts: runs is left as it is)."""
    return {
        name: {
            **min(phase_runs, key=lambda run: run["seconds"]),
            "peak_rss_bytes": max(run["peak_rss_bytes"] for run in phase_runs),
        }
        for name, phase_runs in runs.items()
    }


def report(runs: dict[str, list[dict]]) -> str:
    """The contest's lines, from every phase's runs (one per round; "pandas" may be absent): a line
    per phase with its best run, then the ratios, the pipeline's counts and the evaluators' share.
    With more than one round, each phase line lists every run's time and b/a is given per round."""
    results = best_of(runs)
    lines = []
    for name, r in results.items():
        times = ", ".join(f"{run['seconds']:.1f}" for run in runs[name])
        spread = f"  (best of {times} s)" if len(runs[name]) > 1 else ""
        lines.append(
            f"  {LABELS[name]:<52} {r['seconds']:>7.2f} s (work {r['work_seconds']:>6.2f} s)  "
            f"peak {_mb(r['peak_rss_bytes']):>9}  rows {r['rows']:,}{spread}"
        )
    a, b, b2 = results["duckdb"], results["pipeline"], results["pipeline_inside"]
    lines.append(
        f"  b/a = {b['seconds'] / a['seconds']:.2f} (target <= 1.5); work only (the read or materialize call alone, "
        f"no process start-up) {b['work_seconds'] / a['work_seconds']:.2f}; b'/a = {b2['seconds'] / a['seconds']:.2f} "
        f"(work only {b2['work_seconds'] / a['work_seconds']:.2f})"
    )
    if len(runs["duckdb"]) > 1:  # (a) and (b) of one round share the machine's mood; best/best may pair a lucky (a)
        rounds = sorted(
            b_run["seconds"] / a_run["seconds"] for a_run, b_run in zip(runs["duckdb"], runs["pipeline"], strict=False)
        )
        lines.append(
            f"  b/a per round, sorted: {', '.join(f'{r:.2f}' for r in rounds)} (median {statistics.median(rounds):.2f})"
        )
    if "pandas" in results:
        c = results["pandas"]
        lines.append(
            f"  c/b = {c['seconds'] / b['seconds']:.2f}; work only {c['work_seconds'] / b['work_seconds']:.2f}"
        )
    p = results["pipeline"]
    lines.append(
        f"  pipeline: {p['rows']:,} rows ingested, {p['quarantined']} quarantined, {p['review_rows']:,} in the "
        f"review sample, {p['checks']} check evaluations; warehouse {_mb(p['db_bytes'])} = "
        f"{p['db_bytes'] / max(p['rows'], 1):,.0f} B/request"
    )
    lines.append(
        f"  evaluators: {p['evaluation_seconds']:.2f} s of (b) for {p['flags']:,} flags = "
        f"{p['evaluation_seconds'] / a['seconds']:.2f} x (a) (target <= 0.5), "
        f"{p['evaluation_seconds'] / a['work_seconds']:.2f} x (a)'s work"
    )
    return "\n".join(lines)


def storage_report(st: dict, requests: int) -> str:
    """The storage phase's line: bytes per request (of the pipeline's `requests` rows) before and after."""
    n = max(requests, 1)
    return (
        f"  storage: {st['bytes_before'] / n:,.0f} B/request with prompt/response; "
        f"{st['bytes_after'] / n:,.0f} B/request after storage_retention dropped the text and compacted "
        f"({st['seconds']:.1f} s, peak {_mb(st['peak_rss_bytes'])})"
    )


def run(args: argparse.Namespace) -> int:
    if args.dir:
        Path(args.dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="monitoring-bench-", dir=args.dir))  # only this is removed after
    log_file = work / "logs" / "dt=2026-03-01" / "hour=10" / "bench.jsonl"
    try:
        t = time.monotonic()
        generate(log_file, args.rows)
        size = log_file.stat().st_size
        print(
            f"generated {args.rows:,} rows (+{len(BAD_LINES)} bad lines), {_mb(size)} "
            f"({size / args.rows:,.0f} B/line) in {time.monotonic() - t:.1f} s: {log_file}",
            flush=True,
        )
        prepare_instance(work)
        phases = ["duckdb", "pipeline", "pipeline_inside"] + ([] if args.skip_pandas else ["pandas"])
        runs: dict[str, list[dict]] = {name: [] for name in phases}
        for _ in range(args.repeat):  # rounds, so a slow spell of a shared machine hits every phase alike
            for name in phases:
                runs[name].append(run_phase(name, work, log_file))
        print(report(runs), flush=True)  # before storage runs: the contest's figures do not wait on it
        results = best_of(runs)
        results["storage"] = st = run_phase("storage", work, log_file)
        print(storage_report(st, results["pipeline"]["rows"]), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps({"rows": args.rows, "file_bytes": size, **results}, indent=2))
        return 0
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


LABELS = {
    "duckdb": "(a) bare DuckDB read_json into a table",
    "pipeline": "(b) hourly materialization (ingest+metrics+evals+review)",
    "pipeline_inside": "(b') the same, bad lines inside the big file",
    "pandas": "(c) pandas read_json(lines=True) + groupby",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=100_000, help="log lines in the hour (default 100,000)")
    parser.add_argument("--keep", action="store_true", help="keep the generated logs and databases")
    parser.add_argument("--skip-pandas", action="store_true", help="skip (c): pandas needs several GB at 1M+ rows")
    parser.add_argument("--dir", help="where to create the working directory (default: the system's temp folder)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run every phase this many times and report each one's fastest run (peak: the highest)",
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_phase"]:
        name, work, log_file, out = argv[1:5]
        figures = PHASES[name](Path(work), Path(log_file))
        Path(out).write_text(json.dumps({**figures, "done_at": time.monotonic()}))  # the same clock as the parent's
        return 0
    parser = argparse.ArgumentParser(prog="monitoring-pipeline bench", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
