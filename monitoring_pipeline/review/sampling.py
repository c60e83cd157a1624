"""The stratified review sample of one hour, in one DuckDB statement.

Every request gets a pseudo-random position u in [0, 1) from the first 32 bits of md5(request_id):
the base sample is u < sample_rate, and within each stratum the rows with the smallest u fill its
quota. No random() anywhere, so a re-run (or another machine) picks the same rows.
"""

REVIEW_SAMPLE_DDL = """
CREATE TABLE IF NOT EXISTS review_sample (
    hour TIMESTAMP NOT NULL,
    request_id VARCHAR NOT NULL,
    reasons VARCHAR[] NOT NULL,         -- every stratum that applies: safety_flag, error, low_feedback,
                                        -- slow, model_coverage, random
    priority TINYINT NOT NULL,          -- 1 (safety_flag) .. 6 (random): the strongest reason it was kept
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

STRATA = ("safety_flag", "error", "low_feedback", "slow", "model_coverage", "random")  # priority order

# Membership: the row belongs to the stratum. Picked: it is within the stratum's quota.
SELECT_SAMPLE = """
INSERT INTO review_sample
WITH hour_rows AS (
    SELECT *,
           ('0x' || left(md5(request_id), 8))::UBIGINT / 4294967296.0 AS u,
           quantile_cont(latency_ms, 0.99) OVER () AS p99
    FROM llm_requests WHERE hour = $hour
), members AS (
    SELECT *,
           len(safety_flags) > 0 AS is_safety_flag,
           status = 'error' AS is_error,
           coalesce(feedback <= 2, false) AS is_low_feedback,
           latency_ms > p99 AS is_slow,
           u < $rate AS is_random
    FROM hour_rows
), ranked AS (
    SELECT *,
           row_number() OVER (PARTITION BY is_safety_flag ORDER BY u, request_id) AS r_safety_flag,
           row_number() OVER (PARTITION BY is_error ORDER BY u, request_id) AS r_error,
           row_number() OVER (PARTITION BY is_low_feedback ORDER BY u, request_id) AS r_low_feedback,
           row_number() OVER (PARTITION BY is_slow ORDER BY u, request_id) AS r_slow,
           row_number() OVER (PARTITION BY model ORDER BY u, request_id) AS r_model
    FROM members
), picked AS (
    SELECT *,
           CASE WHEN is_safety_flag AND r_safety_flag <= $q_safety_flag THEN 1
                WHEN is_error AND r_error <= $q_error THEN 2
                WHEN is_low_feedback AND r_low_feedback <= $q_low_feedback THEN 3
                WHEN is_slow AND r_slow <= $q_slow THEN 4
                WHEN r_model <= $min_per_model THEN 5
                WHEN is_random THEN 6 END AS priority
    FROM ranked
)
SELECT hour, request_id,
       list_filter([CASE WHEN is_safety_flag THEN 'safety_flag' END, CASE WHEN is_error THEN 'error' END,
                    CASE WHEN is_low_feedback THEN 'low_feedback' END, CASE WHEN is_slow THEN 'slow' END,
                    CASE WHEN r_model <= $min_per_model THEN 'model_coverage' END,
                    CASE WHEN is_random THEN 'random' END], lambda x: x IS NOT NULL) AS reasons,
       priority, "timestamp", model, status, error_type, latency_ms, feedback, safety_flags,
       CASE WHEN user_id IS NOT NULL THEN sha256($salt || user_id) END AS user_hash,
       redact(prompt), redact(response)
FROM picked
WHERE priority IS NOT NULL
QUALIFY row_number() OVER (ORDER BY priority, u, request_id) <= $max_per_hour
"""


def sample_params(hour, review) -> dict:
    """Query parameters from the `review:` section of the configuration."""
    return {
        "hour": hour,
        "rate": review.sample_rate,
        "q_safety_flag": review.strata.safety_flag,
        "q_error": review.strata.error,
        "q_low_feedback": review.strata.low_feedback,
        "q_slow": review.strata.slow,
        "min_per_model": review.min_per_model,
        "max_per_hour": review.max_per_hour,
    }
