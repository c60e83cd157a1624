"""review_verdicts + judge_verdicts -> judge_agreement: how far the LLM judge can be trusted, per
rubric, measured against the reviewers (Cohen's kappa and the confusion matrix), and the
judge_human_agreement check that says when it cannot.

Recomputed whole whenever verdicts load (the review inbox sensor's run), like human_quality.
"""

import dagster as dg

from monitoring_pipeline.defs.review.judge_sql import JUDGE_VERDICTS_DDL
from monitoring_pipeline.defs.review.verdicts import REVIEW_VERDICTS_DDL
from monitoring_pipeline.lib import checks, markdown
from monitoring_pipeline.lib.db import transaction
from monitoring_pipeline.resources import DuckDBWarehouse, MonitoringSettings

JUDGE_HUMAN_AGREEMENT = "judge_human_agreement"

JUDGE_AGREEMENT_DDL = """
CREATE TABLE IF NOT EXISTS judge_agreement (
    rubric VARCHAR NOT NULL,
    pairs BIGINT NOT NULL,              -- requests with both a human and a judge verdict
    agreement DOUBLE NOT NULL,          -- share of pairs where they agree
    kappa DOUBLE,                       -- Cohen's kappa; NULL when undefined (both used one class only)
    both_bad BIGINT NOT NULL,
    both_good BIGINT NOT NULL,
    judge_bad_human_good BIGINT NOT NULL,
    judge_good_human_bad BIGINT NOT NULL,
    computed_at TIMESTAMP NOT NULL
)"""

# kappa = (p_o - p_e) / (1 - p_e), in integer counts: (n * agree - E) / (n^2 - E), E = n^2 * p_e.
REBUILD = """
INSERT INTO judge_agreement
WITH pairs AS (
    SELECT j.rubric, j.verdict = 'bad' AS judge_bad, h.verdict = 'bad' AS human_bad
    FROM judge_verdicts j JOIN review_verdicts h USING (request_id)
    WHERE j.verdict IS NOT NULL
), cells AS (
    SELECT rubric, count(*)::HUGEINT AS n,
           count(*) FILTER (judge_bad AND human_bad) AS bb,
           count(*) FILTER (NOT judge_bad AND NOT human_bad) AS gg,
           count(*) FILTER (judge_bad AND NOT human_bad) AS bg,
           count(*) FILTER (NOT judge_bad AND human_bad) AS gb
    FROM pairs GROUP BY rubric
), expected AS (
    SELECT *, (bb + bg) * (bb + gb) + (gg + gb) * (gg + bg) AS e FROM cells
)
SELECT rubric, n, (bb + gg) / n,
       CASE WHEN n * n != e THEN (n * (bb + gg) - e) / (n * n - e) END,
       bb, gg, bg, gb, now()::TIMESTAMP
FROM expected ORDER BY rubric
"""


@dg.asset(
    deps=["review_verdicts", "judge_verdicts"],
    pool="duckdb",
    group_name="human_review",
    kinds={"duckdb"},
    check_specs=[
        dg.AssetCheckSpec(
            JUDGE_HUMAN_AGREEMENT,
            asset="judge_agreement",
            description="The LLM judge agrees too little with the reviewers (Cohen's kappa below judge.min_kappa).",
        )
    ],
)
def judge_agreement(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse, settings: MonitoringSettings):
    """Judge vs reviewers per rubric: pairs, agreement, Cohen's kappa and the confusion matrix."""
    cfg = settings.load().judge
    with warehouse.get_connection() as conn:
        for ddl in (JUDGE_AGREEMENT_DDL, JUDGE_VERDICTS_DDL, REVIEW_VERDICTS_DDL):
            conn.execute(ddl)
        with transaction(conn):
            conn.execute("DELETE FROM judge_agreement")
            conn.execute(REBUILD)
        rows = conn.execute(
            "SELECT rubric, pairs, agreement, kappa, both_bad, both_good, judge_bad_human_good, judge_good_human_bad "
            "FROM judge_agreement ORDER BY rubric"
        ).fetchall()
    yield dg.MaterializeResult(
        metadata={
            "rubrics": len(rows),
            "pairs": sum(r[1] for r in rows),
            "by_rubric": dg.MetadataValue.md(
                markdown.table(
                    ["rubric", "pairs", "agreement", "kappa", "both bad", "both good", "judge bad, human good"]
                    + ["judge good, human bad"],
                    [(r[0], r[1], f"{r[2]:.1%}", "undefined" if r[3] is None else f"{r[3]:.3f}", *r[4:]) for r in rows],
                )
            ),
        }
    )
    scopes = [
        checks.judge(rubric, kappa, cfg.min_kappa, pairs, min_sample=cfg.min_pairs, fails_below=True)
        for rubric, pairs, _, kappa, *_ in rows
    ]
    failed = [s.scope for s in scopes if s.failed]
    yield checks.check_result(
        JUDGE_HUMAN_AGREEMENT,
        "judge_agreement",
        scopes,
        severity=dg.AssetCheckSeverity.WARN,
        what="Cohen's kappa of judge vs reviewers",
        fails_below=True,
        min_sample=cfg.min_pairs,
        scope_kind="rubric",
        note=(
            f"Do not trust the LLM judge on {', '.join(failed)}: it disagrees with the reviewers; "
            "fix the rubric or the judge model before acting on judge_verdicts or judge_bad_rate."
            if failed
            else ("No request has both a judge and a human verdict yet." if not rows else "")
        ),
    )
