"""The evaluation tables and the statements that fill them, generated from the evaluators.

One pass judges every call of the run's hours (narrow booleans, no texts kept); the flagged calls
alone are joined back to their texts, redacted, and quoted as evidence. Every statement covers the
whole window (`hour >= $start AND hour < $end`) and keeps each call's hour, so a backfill's day of
hours costs one statement each, not one per hour (a single-hour run is a window of one hour).
"""

from monitoring_pipeline.defs.evaluation.evaluators import JUDGES, Evaluator, gate
from monitoring_pipeline.defs.review.redaction import CARD_CANDIDATE, PATTERNS
from monitoring_pipeline.lib.db import quote_literal

# redact() runs ~25 replacements; a text none of its patterns matches comes out unchanged, so one
# combined match decides whether it needs them (most flagged texts hold nothing to redact).
_ANY_SECRET = "|".join(f"(?:{p})" for p, _ in PATTERNS) + f"|(?:{CARD_CANDIDATE})"
REDACT_IF_NEEDED_MACRO = (
    "CREATE OR REPLACE TEMP MACRO redact_if_needed(s) AS "
    f"CASE WHEN regexp_matches(s, {quote_literal(_ANY_SECRET)}) THEN redact(s) ELSE s END"
)

EVALUATION_FLAGS_DDL = """
CREATE TABLE IF NOT EXISTS evaluation_flags (
    hour TIMESTAMP NOT NULL,
    request_id VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    evaluator VARCHAR NOT NULL,
    evidence VARCHAR                    -- the matched snippet, redacted
)"""

HOURLY_EVALUATIONS_DDL = """
CREATE TABLE IF NOT EXISTS hourly_evaluations (
    hour TIMESTAMP NOT NULL,
    scope VARCHAR NOT NULL,             -- 'all' or a model
    evaluator VARCHAR NOT NULL,
    evaluated BIGINT NOT NULL,          -- calls it could judge
    failed BIGINT NOT NULL,             -- calls it flagged
    fail_rate DOUBLE                    -- failed / evaluated; NULL when nothing was judged
)"""


def judge_sql(evaluators: list[Evaluator]) -> str:
    """_evaluated: per call of the window, its hour, j_<i> (judged) and f_<i> (flagged) for every evaluator."""
    columns = []
    for i, e in enumerate(evaluators):
        judged = f"coalesce({JUDGES[e.judges]}, false)"
        # CASE, not AND: DuckDB evaluates both sides of an AND in a projection, CASE only the rows
        # its condition selects, so an evaluator's own pattern reads only what the gate let through
        condition = f"{judged} AND {e.field[0]}_gate" if e.gate else judged
        columns.append(f"{judged} AS j_{i}")
        columns.append(f"coalesce(CASE WHEN {condition} THEN {e.flags} END, false) AS f_{i}")
    return f"""
CREATE OR REPLACE TEMP TABLE _evaluated AS
WITH calls AS (
    SELECT rowid AS row, hour, request_id, model, status = 'ok' AS ok, prompt, response, finish_reason, output_type
    FROM llm_requests WHERE hour >= $start AND hour < $end
), gated AS (
    SELECT *, {gate(evaluators, "response")} AS r_gate, {gate(evaluators, "prompt")} AS p_gate FROM calls
)
SELECT row, hour, request_id, model, {", ".join(columns)} FROM gated
"""


def insert_flags_sql(evaluators: list[Evaluator]) -> str:
    names = ", ".join(f"CASE WHEN f_{i} THEN '{e.name}' END" for i, e in enumerate(evaluators))
    any_flag = " OR ".join(f"f_{i}" for i in range(len(evaluators)))
    evidence = "\n".join(f"WHEN '{e.name}' THEN {e.evidence}" for e in evaluators)
    quotes_prompt = [e.name for e in evaluators if e.field == "prompt"] or [""]
    quotes_response = [e.name for e in evaluators if e.field == "response"] or [""]
    return f"""
INSERT INTO evaluation_flags
WITH flagged AS MATERIALIZED (
    SELECT row, hour, request_id, model, list_filter([{names}], lambda x: x IS NOT NULL) AS evaluators
    FROM _evaluated WHERE {any_flag}
), texts AS (  -- the flagged calls' texts, redacted before anything is quoted from them
    SELECT f.hour, f.request_id, f.model, f.evaluators, r.finish_reason,
           length(r.prompt) AS prompt_chars, length(r.response) AS response_chars,  -- before redaction
           CASE WHEN list_has_any(f.evaluators, {quotes_prompt}) THEN redact_if_needed(r.prompt) END AS prompt,
           CASE WHEN list_has_any(f.evaluators, {quotes_response}) THEN redact_if_needed(r.response) END AS response
    FROM flagged f JOIN llm_requests r ON r.rowid = f.row
), one_per_evaluator AS (
    SELECT hour, request_id, model, unnest(evaluators) AS evaluator, finish_reason, prompt_chars, response_chars,
           prompt, response
    FROM texts
)
SELECT hour, request_id, model, evaluator, left(CASE evaluator {evidence} END, 400)
FROM one_per_evaluator
"""


def insert_hourly_sql(evaluators: list[Evaluator]) -> str:
    """Per hour of `$hours` (every hour of the run, as a list), the scope `all` and each model. The
    hours are the join's left side so that an hour without calls still gets its `all` rows (nothing
    judged); its one all-NULL row would form a NULL model group, which HAVING drops."""
    counts = ", ".join(
        f"{{'evaluator': '{e.name}', 'evaluated': count(*) FILTER (j_{i}), 'failed': count(*) FILTER (f_{i})}}"
        for i, e in enumerate(evaluators)
    )
    return f"""
INSERT INTO hourly_evaluations
SELECT hour, scope, e.evaluator, e.evaluated, e.failed, e.failed / nullif(e.evaluated, 0)
FROM (SELECT hour, CASE WHEN grouping(model) = 1 THEN 'all' ELSE model END AS scope, unnest([{counts}]) AS e
      FROM unnest($hours::TIMESTAMP[]) AS h(hour) LEFT JOIN _evaluated USING (hour)
      GROUP BY GROUPING SETS ((hour), (hour, model))
      HAVING grouping(model) = 1 OR model IS NOT NULL)
"""
