"""The stratified review sample of each hour, in one DuckDB statement for all the run's hours.

Every request gets a pseudo-random position u in [0, 1) from the first 32 bits of md5(request_id):
the base sample is u < sample_rate, and within each stratum the rows with the smallest u fill its
quota. No random() anywhere, so a re-run (or another machine) picks the same rows. Every figure,
rank and quota is taken per hour (grouped or partitioned by hour), so an hour's sample is the same
whether it is drawn alone or in a backfill's day of hours.
"""

REVIEW_SAMPLE_DDL = """
CREATE TABLE IF NOT EXISTS review_sample (
    hour TIMESTAMP NOT NULL,
    request_id VARCHAR NOT NULL,
    reasons VARCHAR[] NOT NULL,         -- every stratum that applies: pii_leak, safety_flag, error,
                                        -- evaluator_flag, low_feedback, slow, model_coverage, random
    priority TINYINT NOT NULL,          -- 1 (pii_leak) .. 8 (random): the strongest reason it was kept
    "timestamp" TIMESTAMP NOT NULL,
    model VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    error_type VARCHAR,
    latency_ms DOUBLE NOT NULL,
    feedback TINYINT,
    safety_flags VARCHAR[] NOT NULL,
    user_hash VARCHAR,                  -- sha256(salt || user_id); the raw id is never stored
    prompt VARCHAR,                     -- redacted
    response VARCHAR                    -- redacted
)"""

# priority order; pii_leak and evaluator_flag are calls the evaluators flagged (evaluation_flags)
STRATA = ("pii_leak", "safety_flag", "error", "evaluator_flag", "low_feedback", "slow", "model_coverage", "random")

# Membership: the row belongs to the stratum. Picked: it is within the hour's quota. Only
# narrow rows are ranked, and only the candidates (members of some stratum, or among their model's
# first rows): a stratum's rank among its members is the same either way, and sorting all of an
# hour's rows five times, texts included, cost more than the rest of the materialization. Texts
# and user ids are joined for the few rows kept.
SELECT_SAMPLE = """
INSERT INTO review_sample
WITH flags AS (
    SELECT hour, request_id, bool_or(evaluator = 'pii_leak') AS pii_leak, bool_or(evaluator <> 'pii_leak') AS other,
           bool_or(evaluator = 'refusal') AS refusal
    FROM evaluation_flags WHERE hour >= $start AND hour < $end GROUP BY hour, request_id
), hour_rows AS MATERIALIZED (
    SELECT l.rowid AS row, hour, request_id, model, latency_ms,
           ('0x' || left(md5(request_id), 8))::UBIGINT / 4294967296.0 AS u,
           coalesce(f.pii_leak, false) AS is_pii_leak,
           len(safety_flags) > 0 AS is_safety_flag,
           status = 'error' AS is_error,
           coalesce(f.other, false) AS is_evaluator_flag,
           coalesce(f.refusal, false) AS is_refusal,
           coalesce(feedback <= 2, false) AS is_low_feedback
    FROM llm_requests l LEFT JOIN flags f USING (hour, request_id) WHERE l.hour >= $start AND l.hour < $end
), p99 AS (
    SELECT hour, quantile_cont(latency_ms, 0.99) AS p99 FROM hour_rows GROUP BY hour
), members AS (
    SELECT hour_rows.*, latency_ms > p99 AS is_slow, u < $rate AS is_random
    FROM hour_rows JOIN p99 USING (hour)
), model_firsts AS MATERIALIZED (  -- each model's first rows by (u, request_id); top-n, no sort
    SELECT hour, unnest(min_by(request_id, {'u': u, 'id': request_id}, greatest($min_per_model, 1))) AS request_id
    FROM hour_rows WHERE $min_per_model > 0 GROUP BY hour, model
), covered AS (
    SELECT *, EXISTS (SELECT 1 FROM model_firsts f WHERE f.hour = m.hour AND f.request_id = m.request_id)
              AS is_model_coverage
    FROM members m
), candidates AS (
    SELECT * FROM covered
    WHERE is_pii_leak OR is_safety_flag OR is_error OR is_evaluator_flag OR is_low_feedback OR is_slow OR is_random
       OR is_model_coverage
), ranked AS (
    SELECT *,
           row_number() OVER (PARTITION BY hour, is_pii_leak ORDER BY u, request_id) AS r_pii_leak,
           row_number() OVER (PARTITION BY hour, is_safety_flag ORDER BY u, request_id) AS r_safety_flag,
           -- refusals first, then the other evaluators' flags
           row_number() OVER (PARTITION BY hour, is_evaluator_flag ORDER BY NOT is_refusal, u, request_id)
               AS r_evaluator_flag,
           row_number() OVER (PARTITION BY hour, is_error ORDER BY u, request_id) AS r_error,
           row_number() OVER (PARTITION BY hour, is_low_feedback ORDER BY u, request_id) AS r_low_feedback,
           row_number() OVER (PARTITION BY hour, is_slow ORDER BY u, request_id) AS r_slow
    FROM candidates
), picked AS (
    SELECT *,
           CASE WHEN is_pii_leak AND r_pii_leak <= $q_pii_leak THEN 1
                WHEN is_safety_flag AND r_safety_flag <= $q_safety_flag THEN 2
                WHEN is_error AND r_error <= $q_error THEN 3
                WHEN is_evaluator_flag AND r_evaluator_flag <= $q_evaluator_flag THEN 4
                WHEN is_low_feedback AND r_low_feedback <= $q_low_feedback THEN 5
                WHEN is_slow AND r_slow <= $q_slow THEN 6
                WHEN is_model_coverage THEN 7
                WHEN is_random THEN 8 END AS priority
    FROM ranked
), kept AS (
    SELECT * FROM picked
    WHERE priority IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY hour ORDER BY priority, u, request_id) <= $max_per_hour
)
SELECT r.hour, k.request_id,
       list_filter([CASE WHEN is_pii_leak THEN 'pii_leak' END,
                    CASE WHEN is_safety_flag THEN 'safety_flag' END, CASE WHEN is_error THEN 'error' END,
                    CASE WHEN is_evaluator_flag THEN 'evaluator_flag' END, CASE WHEN is_low_feedback THEN 'low_feedback' END, CASE WHEN is_slow THEN 'slow' END,
                    CASE WHEN is_model_coverage THEN 'model_coverage' END,
                    CASE WHEN is_random THEN 'random' END], lambda x: x IS NOT NULL) AS reasons,
       k.priority, r."timestamp", k.model, r.status, r.error_type, k.latency_ms, r.feedback, r.safety_flags,
       CASE WHEN r.user_id IS NOT NULL THEN sha256($salt || r.user_id) END AS user_hash,
       redact(r.prompt), redact(r.response)
FROM kept k JOIN llm_requests r ON r.rowid = k.row  -- fetches the kept rows, not a scan of all the texts
"""


def sample_params(window: dict, review) -> dict:
    """Query parameters: the window (`Hours.window`) and the `review:` section of the configuration."""
    return {
        **window,
        "rate": review.sample_rate,
        "q_pii_leak": review.strata.pii_leak,
        "q_safety_flag": review.strata.safety_flag,
        "q_evaluator_flag": review.strata.evaluator_flag,
        "q_error": review.strata.error,
        "q_low_feedback": review.strata.low_feedback,
        "q_slow": review.strata.slow,
        "min_per_model": review.min_per_model,
        "max_per_hour": review.max_per_hour,
    }
