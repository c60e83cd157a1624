"""review_sample -> judge_verdicts: an LLM judge reads each sampled request's redacted prompt and
response once per rubric, and the judge_bad_rate check watches the share it calls bad.

The judge is a third party and a cost: it reads only the redacted texts of review_sample, a verdict
already stored is never paid for twice, `judge.max_calls_per_hour` caps the calls (and says so),
and a judge that is down leaves errors to retry, never a failed hour. A run covers all its hours at
once (the cap still applies per hour); with the judge off it opens one connection, reads a few
window queries and rewrites no file, so a backfill pays next to nothing for it.
"""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import NamedTuple

import dagster as dg

from monitoring_pipeline.defs.review import judge_sql as sql
from monitoring_pipeline.defs.review.export import export_hours, hour_files
from monitoring_pipeline.defs.review.judge_client import JudgeClient, Outcome
from monitoring_pipeline.defs.review.sampling import REVIEW_SAMPLE_DDL
from monitoring_pipeline.lib import checks, hourly, markdown
from monitoring_pipeline.lib.db import transaction
from monitoring_pipeline.lib.partitions import hourly_partitions
from monitoring_pipeline.resources import DuckDBWarehouse, MonitoringSettings

JUDGE_BAD_RATE = "judge_bad_rate"
NOT_CONFIGURED = "Judge not configured: set MONITORING_JUDGE_URL and MONITORING_JUDGE_MODEL to judge the review sample."


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "judge_verdicts",
            deps=["review_sample"],
            group_name="review",
            kinds={"duckdb", "openai"},
            description="The LLM judge's verdict (good/bad, reason) on each review_sample request, per rubric.",
        )
    ],
    partitions_def=hourly_partitions,
    can_subset=True,  # a range run reports each hour's check as an evaluation (lib/hourly.py)
    backfill_policy=hourly.BACKFILL_POLICY,
    pool="duckdb",
    check_specs=[
        dg.AssetCheckSpec(
            JUDGE_BAD_RATE,
            asset="judge_verdicts",
            partitions_def=hourly_partitions,
            description="The LLM judge calls more than judge.bad_rate_threshold of the hour's judged requests bad.",
        )
    ],
)
@hourly.per_run
def judge_verdicts(
    context: dg.AssetExecutionContext,
    hours: hourly.Hours,
    warehouse: DuckDBWarehouse,
    settings: MonitoringSettings,
    judge: JudgeClient,
) -> Iterator[hourly.HourResults]:
    """The LLM judge's verdict (good/bad, reason) on each review_sample request, per rubric."""
    config = settings.load()
    cfg = config.judge
    params = {
        **hours.window,
        "judge_model": judge.model,
        "names": [r.name for r in cfg.rubrics],
        "instructions": [r.instruction for r in cfg.rubrics],
    }
    todo: list[Pair] = []
    reused: dict[datetime, int] = {}
    if judge.configured:  # the connection is closed while the judge is called: other runs can write
        with warehouse.get_connection() as conn:
            _create_tables(conn)
            todo = [Pair(*row) for row in conn.execute(sql.TO_JUDGE, params).fetchall()]
            reused = dict(conn.execute(sql.REUSED, params).fetchall())

    calls, capped = _cap(todo, cfg.max_calls_per_hour)
    if not judge.configured:
        context.log.info(NOT_CONFIGURED)
    elif capped:
        context.log.warning(
            f"judge.max_calls_per_hour = {cfg.max_calls_per_hour}: {len(capped)} of {len(todo)} (request, rubric) "
            "pairs left unjudged this run, stored as errors; re-run the hour to judge them."
        )
    outcomes = _judge_all(judge, calls, cfg) if calls else []
    cap_note = (
        f"not judged: judge.max_calls_per_hour ({cfg.max_calls_per_hour}) reached; a re-run of the hour judges it"
    )
    rows = [(*p.stored, o.verdict, o.reason, o.error, o.latency_ms, o.tokens) for p, o in outcomes]
    rows += [(*p.stored, None, None, cap_note, None, None) for p in capped]

    failed = [o for _, o in outcomes if o.error]
    if failed:
        context.log.warning(
            f"Judge errors on {len(failed)} of {len(outcomes)} calls (stored; the next run of the hour retries them). "
            f"First: {failed[0].error}"
        )
    with warehouse.get_connection() as conn:
        _create_tables(conn)
        if judge.configured:
            conn.execute(sql.NEW_VERDICTS)
            if rows:
                conn.executemany("INSERT INTO new_verdicts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            with transaction(conn):
                conn.execute(sql.DELETE_STALE, params)
                conn.execute(sql.INSERT_NEW, {"judge_model": judge.model})
        scopes = conn.execute(sql.BAD_RATE, hours.window).fetchall()
        stored = {hour: (n, errors) for hour, n, errors in conn.execute(sql.STORED, hours.window).fetchall()}
        preview = conn.execute(sql.PREVIEW, hours.window | {"n": config.review.preview_rows}).fetchall()
        if judge.configured:
            paths = export_hours(conn, hours, config.review.output_dir)
        else:  # no verdict changed: the files review_sample wrote stand
            paths = {key: hour_files(config.review.output_dir, key) for key in hours.keys}

    for key, hour in hours:
        n, errors = stored.get(hour, (0, 0))
        hour_outcomes = [o for p, o in outcomes if p.hour == hour]
        latencies = sorted(o.latency_ms for o in hour_outcomes)
        metadata = {
            "configured": judge.configured,
            "judge_model": dg.MetadataValue.text(judge.model or "(none)"),
            "rubrics": dg.MetadataValue.text(", ".join(r.name for r in cfg.rubrics)),
            "rows": n,
            "reused": reused.get(hour, 0),
            "calls": len(hour_outcomes),
            "attempts": sum(o.attempts for o in hour_outcomes),
            "judged": sum(not o.error for o in hour_outcomes),
            "errors": errors,
            "capped": sum(p.hour == hour for p in capped),
            "max_calls_per_hour": dg.MetadataValue.text(str(cfg.max_calls_per_hour)),
            "tokens": sum(o.tokens or 0 for o in hour_outcomes),
            "latency_p50_ms": latencies[len(latencies) // 2] if latencies else 0.0,
            "preview": dg.MetadataValue.md(
                markdown.table(
                    ["request_id", "model", "rubric", "verdict", "reason", "prompt", "response"],
                    [row[1:] for row in preview if row[0] == hour],
                    120,
                )
            ),
            "csv": dg.MetadataValue.path(str(paths[key]["csv"])),
            "jsonl": dg.MetadataValue.path(str(paths[key]["json"])),
            **({"note": dg.MetadataValue.text(NOT_CONFIGURED)} if not judge.configured else {}),
        }
        check = _check([row[1:] for row in scopes if row[0] == hour], config, errors, judge.configured)
        yield hourly.HourResults(key, [dg.MaterializeResult(metadata=metadata, check_results=[check])])


def _create_tables(conn) -> None:
    conn.execute(REVIEW_SAMPLE_DDL)
    conn.execute(sql.JUDGE_VERDICTS_DDL)


class Pair(NamedTuple):
    """A sampled request and a rubric without a reusable verdict (a row of TO_JUDGE)."""

    hour: datetime
    request_id: str
    model: str
    prompt: str | None
    response: str | None
    rubric: str
    instruction: str

    @property
    def stored(self) -> tuple:
        """The columns of new_verdicts that say what was judged."""
        return (self.hour, self.request_id, self.model, self.rubric, self.instruction)


def _cap(todo: list[Pair], per_hour: int) -> tuple[list[Pair], list[Pair]]:
    """The calls to make and the pairs left over: each hour's first `per_hour` (TO_JUDGE's order)."""
    calls: list[Pair] = []
    capped: list[Pair] = []
    seen: dict[datetime, int] = {}
    for pair in todo:
        seen[pair.hour] = seen.get(pair.hour, 0) + 1
        (calls if seen[pair.hour] <= per_hour else capped).append(pair)
    return calls, capped


def _judge_all(judge: JudgeClient, calls: list[Pair], cfg) -> list[tuple[Pair, Outcome]]:
    """Every (request, rubric) call of the run's hours, `cfg.concurrency` at a time; each returns, none raises."""
    client = judge.client(cfg.timeout_s)
    try:
        with ThreadPoolExecutor(max_workers=cfg.concurrency, thread_name_prefix="judge") as pool:
            outcomes = pool.map(lambda p: judge.judge(client, p.instruction, p.prompt, p.response, cfg), calls)
            return list(zip(calls, outcomes, strict=True))
    finally:
        client.close()


def _check(scopes: list[tuple], config, errors: int, configured: bool) -> dg.AssetCheckResult:
    threshold = config.judge.bad_rate_threshold
    min_sample = config.min_sample.get(JUDGE_BAD_RATE, 1)
    judged = [
        checks.judge(scope, bad / n if n else None, threshold, n, min_sample=min_sample) for scope, n, bad in scopes
    ]
    if not judged or judged[0].sample_size == 0:
        why = "judge not configured" if not configured else f"{errors} judge error(s)" if errors else "nothing sampled"
        note = f"No verdicts ({why})."
        judged = []
    else:
        note = f"{errors} judge error(s) this hour." if errors else ""
    return checks.check_result(
        JUDGE_BAD_RATE,
        "judge_verdicts",
        judged,
        severity=dg.AssetCheckSeverity.WARN,
        what="judge's bad rate",
        unit="%",
        min_sample=min_sample,
        note=note,
    )
