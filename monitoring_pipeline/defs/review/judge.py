"""review_sample -> judge_verdicts: an LLM judge reads each sampled request's redacted prompt and
response once per rubric, and the judge_bad_rate check watches the share it calls bad.

The judge is a third party and a cost: it reads only the redacted texts of review_sample, a verdict
already stored is never paid for twice, `judge.max_calls_per_hour` caps the calls (and says so),
and a judge that is down leaves errors to retry, never a failed hour.
"""

from concurrent.futures import ThreadPoolExecutor

import dagster as dg

from monitoring_pipeline.defs.review import judge_sql as sql
from monitoring_pipeline.defs.review.export import export_hour, hour_dir
from monitoring_pipeline.defs.review.judge_client import JudgeClient, Outcome
from monitoring_pipeline.defs.review.sampling import REVIEW_SAMPLE_DDL
from monitoring_pipeline.lib import checks, hourly, markdown
from monitoring_pipeline.lib.db import one, transaction
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
@hourly.per_hour
def judge_verdicts(
    context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse, settings: MonitoringSettings, judge: JudgeClient
):
    """The LLM judge's verdict (good/bad, reason) on each review_sample request, per rubric."""
    config = settings.load()
    cfg = config.judge
    hour = context.partition_time_window.start.replace(tzinfo=None)
    params = {
        "hour": hour,
        "judge_model": judge.model,
        "names": [r.name for r in cfg.rubrics],
        "instructions": [r.instruction for r in cfg.rubrics],
    }
    with warehouse.get_connection() as conn:
        conn.execute(REVIEW_SAMPLE_DDL)
        conn.execute(sql.JUDGE_VERDICTS_DDL)
        todo = conn.execute(sql.TO_JUDGE, params).fetchall() if judge.configured else []
        reused = one(conn, sql.REUSED, params)[0] if judge.configured else 0

    calls, capped = todo[: cfg.max_calls_per_hour], todo[cfg.max_calls_per_hour :]
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
    rows = [(*row[:2], *row[4:], o.verdict, o.reason, o.error, o.latency_ms, o.tokens) for row, o in outcomes]
    rows += [(*row[:2], *row[4:], None, None, cap_note, None, None) for row in capped]

    failed = [o for _, o in outcomes if o.error]
    if failed:
        context.log.warning(
            f"Judge errors on {len(failed)} of {len(outcomes)} calls (stored; the next run of the hour retries them). "
            f"First: {failed[0].error}"
        )
    with warehouse.get_connection() as conn:
        if judge.configured:
            conn.execute(sql.NEW_VERDICTS)
            if rows:
                conn.executemany("INSERT INTO new_verdicts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            with transaction(conn):
                conn.execute(sql.DELETE_STALE, params)
                conn.execute(sql.INSERT_NEW, {"hour": hour, "judge_model": judge.model})
        scopes = conn.execute(sql.BAD_RATE, {"hour": hour}).fetchall()
        stored, errors = one(
            conn,
            "SELECT count(*), count(*) FILTER (verdict IS NULL) FROM judge_verdicts WHERE hour = $hour",
            {"hour": hour},
        )
        preview = conn.execute(sql.PREVIEW, {"hour": hour, "n": config.review.preview_rows}).fetchall()
        paths = export_hour(conn, hour, hour_dir(config.review.output_dir, context.partition_key))

    judged = [o for _, o in outcomes if not o.error]
    latencies = sorted(o.latency_ms for _, o in outcomes)
    yield dg.MaterializeResult(
        metadata={
            "configured": judge.configured,
            "judge_model": dg.MetadataValue.text(judge.model or "(none)"),
            "rubrics": dg.MetadataValue.text(", ".join(r.name for r in cfg.rubrics)),
            "rows": stored,
            "reused": reused,
            "calls": len(outcomes),
            "attempts": sum(o.attempts for _, o in outcomes),
            "judged": len(judged),
            "errors": errors,
            "capped": len(capped),
            "max_calls_per_hour": dg.MetadataValue.text(str(cfg.max_calls_per_hour)),
            "tokens": sum(o.tokens or 0 for _, o in outcomes),
            "latency_p50_ms": latencies[len(latencies) // 2] if latencies else 0.0,
            "preview": dg.MetadataValue.md(
                markdown.table(
                    ["request_id", "model", "rubric", "verdict", "reason", "prompt", "response"], preview, 120
                )
            ),
            "csv": dg.MetadataValue.path(str(paths["csv"])),
            "jsonl": dg.MetadataValue.path(str(paths["json"])),
            **({"note": dg.MetadataValue.text(NOT_CONFIGURED)} if not judge.configured else {}),
        }
    )
    yield _check(scopes, config, errors, judge.configured)


def _judge_all(judge: JudgeClient, calls: list[tuple], cfg) -> list[tuple[tuple, Outcome]]:
    """Every (request, rubric) call, `cfg.concurrency` at a time; each returns, none raises."""
    client = judge.client(cfg.timeout_s)
    try:
        with ThreadPoolExecutor(max_workers=cfg.concurrency, thread_name_prefix="judge") as pool:
            outcomes = pool.map(lambda row: judge.judge(client, row[5], row[2], row[3], cfg), calls)
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
