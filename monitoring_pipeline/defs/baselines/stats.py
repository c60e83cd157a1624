"""The statistics of a baseline: a robust band for a value, a significance test for a count.

Only a handful of figures per hour reach here (scopes x metrics); the history itself is reduced
to median and MAD in DuckDB (sql.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from monitoring_pipeline.config import AnomalyConfig

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution x this = its standard deviation


@dataclass(frozen=True)
class Verdict:
    expected: float | None
    lower: float | None
    upper: float | None
    anomalous: bool
    enough_history: bool


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space from k upwards (exact, and quick:
    only excesses above the mean are asked about, where the terms fall geometrically)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    if k <= n * p:
        return 1.0  # not an excess: never significant, no need for the exact figure
    log_p, log_q = math.log(p), math.log1p(-p)
    log_term = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_p + (n - k) * log_q
    term, total, i = math.exp(log_term), 0.0, k
    while i <= n:
        total += term
        if term <= total * 1e-12:
            break
        term *= (n - i) / (i + 1) * p / (1 - p)
        i += 1
    return min(total, 1.0)


def critical_count(n: int, p: float, alpha: float) -> int:
    """The fewest events in n trials that are significant at `alpha` against rate p."""
    lo, hi = max(0, math.floor(n * p)), n + 1
    while lo < hi:  # binomial_sf falls as k grows
        mid = (lo + hi) // 2
        if binomial_sf(mid, n, p) < alpha:
            hi = mid
        else:
            lo = mid + 1
    return lo


def value_band(
    value: float | None,
    median: float | None,
    mad: float | None,
    history: int,
    config: AnomalyConfig,
    *,
    volume: float | None = None,
    count: bool = False,
    both_ways: bool = False,
) -> Verdict:
    """Median +/- band_mads robust deviations, anomalous above the band (or below it too).

    The deviation is the larger of 1.4826 x MAD, the noise of a figure made of `volume` calls
    (a sum or a tail of n calls varies by about 1/sqrt(n) of itself: a p99 over 40 night calls
    is not a p99 over 4,000), and, for a count, its Poisson noise; widened for the median's own
    error over few weeks (variance pi/2 x sigma^2 / weeks). Never narrower than min_band x median."""
    if median is None or history < config.min_weeks:
        return Verdict(median, None, None, False, False)
    sigma = MAD_TO_SIGMA * (mad or 0.0)
    if volume:
        sigma = max(sigma, abs(median) / math.sqrt(max(volume, 1.0)))
    if count:
        sigma = max(sigma, math.sqrt(max(median, 1.0)))
    sigma *= math.sqrt(1 + math.pi / (2 * history))
    half = max(config.band_mads * sigma, config.min_band * abs(median))
    lower, upper = max(0.0, median - half), median + half
    anomalous = value is not None and (value > upper or (both_ways and value < lower))
    return Verdict(median, lower if both_ways else None, upper, anomalous, True)


def rate_band(
    events: int | None, trials: int | None, median_rate: float | None, history: int, config: AnomalyConfig
) -> Verdict:
    """A rate judged as a count: anomalous when the hour's events are significantly more than the
    baseline rate predicts for its volume (binomial test at `alpha`) and the rate is more than
    min_ratio x the baseline. `upper` is the smallest rate that would have been anomalous."""
    if median_rate is None or history < config.min_weeks:
        return Verdict(median_rate, None, None, False, False)
    baseline = max(median_rate, config.min_rate)
    if not trials:
        return Verdict(median_rate, 0.0, None, False, True)
    need = max(critical_count(trials, baseline, config.alpha), math.floor(config.min_ratio * baseline * trials) + 1)
    return Verdict(median_rate, 0.0, need / trials, (events or 0) >= need, True)
