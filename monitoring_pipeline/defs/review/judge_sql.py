"""The judge_verdicts table and the SQL that decides what to judge and writes the verdicts.

A stored verdict is reused for the same (request, rubric, rubric text, judge model): the rubric's
text is kept as its sha256, so editing a rubric or switching the judge model judges again, while a
re-run of the hour makes no call for what it already knows. Errors are stored with a NULL verdict
and judged again by the next run of the hour. Every statement covers the run's window of hours
(`hour >= $start AND hour < $end`) and keeps each row's hour.
"""

JUDGE_VERDICTS_DDL = """
CREATE TABLE IF NOT EXISTS judge_verdicts (
    hour TIMESTAMP NOT NULL,
    request_id VARCHAR NOT NULL,
    model VARCHAR NOT NULL,             -- the model that answered the request
    rubric VARCHAR NOT NULL,
    verdict VARCHAR,                    -- good | bad; NULL when the judge failed (see error)
    reason VARCHAR,
    judge_model VARCHAR NOT NULL,
    error VARCHAR,                      -- why there is no verdict: HTTP status, timeout, bad answer, the cap
    latency_ms DOUBLE,
    tokens BIGINT,
    rubric_sha VARCHAR NOT NULL,        -- sha256 of the rubric's instruction when judged
    judged_at TIMESTAMP NOT NULL
)"""

# The rubrics come in as two parallel lists: unnest zips them.
RUBRICS = "(SELECT unnest($names) AS name, unnest($instructions) AS instruction)"

_REUSABLE = """v.verdict IS NOT NULL AND v.judge_model = $judge_model
    AND EXISTS (SELECT 1 FROM {rubrics} r WHERE r.name = v.rubric AND sha256(r.instruction) = v.rubric_sha)
    AND EXISTS (SELECT 1 FROM review_sample s WHERE s.hour = v.hour AND s.request_id = v.request_id)"""

# Each hour's sampled requests x rubrics without a reusable verdict, most important first (the cap
# keeps the head of each hour's list).
TO_JUDGE = f"""
SELECT s.hour, s.request_id, s.model, s.prompt, s.response, r.name AS rubric, r.instruction
FROM review_sample s CROSS JOIN {RUBRICS} r
WHERE s.hour >= $start AND s.hour < $end AND NOT EXISTS (
    SELECT 1 FROM judge_verdicts v
    WHERE v.hour = s.hour AND v.request_id = s.request_id AND v.rubric = r.name
      AND v.rubric_sha = sha256(r.instruction) AND v.verdict IS NOT NULL AND v.judge_model = $judge_model)
ORDER BY s.hour, s.priority, s.request_id, r.name
"""

REUSED = f"""
SELECT v.hour, count(*) FROM judge_verdicts v
WHERE v.hour >= $start AND v.hour < $end AND {_REUSABLE.format(rubrics=RUBRICS)} GROUP BY v.hour
"""

# Delete-then-insert in one transaction: everything of the hours but the reusable verdicts goes.
DELETE_STALE = f"""
DELETE FROM judge_verdicts v WHERE v.hour >= $start AND v.hour < $end AND (
    NOT ({_REUSABLE.format(rubrics=RUBRICS)})
    OR EXISTS (SELECT 1 FROM new_verdicts n
               WHERE n.hour = v.hour AND n.request_id = v.request_id AND n.rubric = v.rubric))
"""

NEW_VERDICTS = """
CREATE OR REPLACE TEMP TABLE new_verdicts (
    hour TIMESTAMP, request_id VARCHAR, model VARCHAR, rubric VARCHAR, instruction VARCHAR, verdict VARCHAR, reason VARCHAR,
    error VARCHAR, latency_ms DOUBLE, tokens BIGINT
)"""

INSERT_NEW = """
INSERT INTO judge_verdicts
SELECT hour, request_id, model, rubric, verdict, reason, $judge_model, error, latency_ms, tokens,
       sha256(instruction), now()::TIMESTAMP
FROM new_verdicts
"""

# A request is bad when any rubric judged it bad; judged when any rubric gave a verdict. Per hour,
# all then each model; an hour without verdicts has no rows.
BAD_RATE = """
WITH per_request AS (
    SELECT hour, request_id, any_value(model) AS model, bool_or(verdict = 'bad') AS bad
    FROM judge_verdicts WHERE hour >= $start AND hour < $end AND verdict IS NOT NULL GROUP BY hour, request_id
)
SELECT hour, CASE WHEN grouping(model) = 1 THEN 'all' ELSE model END AS scope, count(*) AS judged,
       count(*) FILTER (bad) AS bad
FROM per_request GROUP BY GROUPING SETS ((hour), (hour, model))
ORDER BY hour, scope != 'all', scope
"""

# Per hour: rows stored and rows without a verdict (errors, the cap).
STORED = """
SELECT hour, count(*), count(*) FILTER (verdict IS NULL) FROM judge_verdicts
WHERE hour >= $start AND hour < $end GROUP BY hour
"""

PREVIEW = """
SELECT v.hour, v.request_id, v.model, v.rubric, coalesce(v.verdict, 'error') AS verdict,
       coalesce(v.reason, v.error) AS why, s.prompt, s.response
FROM judge_verdicts v LEFT JOIN review_sample s USING (hour, request_id)
WHERE v.hour >= $start AND v.hour < $end
QUALIFY row_number() OVER (
    PARTITION BY v.hour ORDER BY v.verdict = 'bad' DESC NULLS FIRST, s.priority, v.request_id, v.rubric) <= $n
ORDER BY v.hour, v.verdict = 'bad' DESC NULLS FIRST, s.priority, v.request_id, v.rubric
"""
