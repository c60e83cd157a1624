"""The one way a check reports: every check judges scopes (the hour as a whole, `all`, and each
model), and `check_result` turns them into the AssetCheckResult people read and the incident code
reads back.

What a result carries, for every check alike:
- `description`: what happened in this hour, in one line, breaches first
  ("model `chat-large`: mean latency 3,201 ms > 3,000 ms (n=442); all traffic 2,272 ms ok");
- metadata `value`, `threshold`, `sample_size` (and `scope`): the hour as a whole, unless only
  models failed, then the worst of them, so the page shows the figure that failed the check;
- metadata `breaches`: every failing scope as {scope, value, threshold, sample_size} (the incidents
  are opened from this list); `scopes`: a table of every scope with its verdict; `min_sample`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import dagster as dg

from monitoring_pipeline.lib import markdown

FAIL, OK, TOO_LITTLE, PER_MODEL, NO_DATA = "FAIL", "ok", "too little data", "per model", "no data"


@dataclass(frozen=True)
class Scope:
    """One scope's figure and verdict."""

    scope: str  # 'all' or a model
    value: float | None
    threshold: float | None
    sample_size: int
    status: str  # FAIL | ok | too little data | per model | no data

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def breach(self) -> dict:
        return {"scope": self.scope, "value": self.value, "threshold": self.threshold, "sample_size": self.sample_size}


def judge(
    scope: str,
    value: float | None,
    threshold: float | None,
    sample_size: int | None,
    *,
    min_sample: int,
    fails_below: bool = False,
    judged: bool = True,
    breached: bool | None = None,
) -> Scope:
    """The verdict for one scope: FAIL when the value is beyond the threshold (below it when
    `fails_below`) with at least `min_sample` evidence. `judged=False` records a scope that is
    shown but not judged (the hour as a whole once models have their own thresholds);
    `breached` overrides the comparison for checks whose rule is not a plain threshold."""
    n = sample_size or 0
    if not judged:
        status = PER_MODEL
    elif value is None and breached is None:
        status = NO_DATA
    elif n < min_sample:
        status = TOO_LITTLE
    else:
        if breached is None:
            assert value is not None and threshold is not None
            breached = value < threshold if fails_below else value > threshold
        status = FAIL if breached else OK
    return Scope(scope, value, threshold, n, status)


def fmt(value: float | None, unit: str = "") -> str:
    """A figure as people read it: 2.35 %, 3,201 ms, 1,100 tokens, 2.5 stars."""
    if value is None:
        return "n/a"
    if unit == "%":
        return f"{value:.2%}"
    number = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"
    return f"{number} {unit}".strip()


def _label(scope: str, kind: str = "model") -> str:
    return "all traffic" if scope == "all" else f"{kind} {scope}"


def describe(
    scopes: list[Scope], what: str, unit: str, fails_below: bool, note: str = "", scope_kind: str = "model"
) -> str:
    """One line: the breaches first, then how the hour as a whole fared."""
    op = "<" if fails_below else ">"
    breaches = sorted((s for s in scopes if s.failed), key=lambda s: (s.scope != "all", s.scope))
    parts = [
        f"{_label(s.scope, scope_kind)}: {what} {fmt(s.value, unit)} {op} {fmt(s.threshold, unit)} (n={s.sample_size:,})"
        for s in breaches
    ]
    overall = next((s for s in scopes if s.scope == "all"), None)
    if overall is not None and not overall.failed:
        verdict = {OK: "ok", TOO_LITTLE: "too little data to judge", PER_MODEL: "judged per model"}.get(
            overall.status, overall.status
        )
        parts.append(f"all traffic {fmt(overall.value, unit)} {verdict} (n={overall.sample_size:,})")
    others = [s for s in scopes if s.scope != "all" and not s.failed and s.status == OK]
    if not breaches and others:
        parts.append(f"{len(others)} {scope_kind}(s) ok")
    return "; ".join(parts) + (f". {note}" if note else "")


def scopes_table(scopes: Iterable[Scope], unit: str = "") -> str:
    return markdown.table(
        ["scope", "value", "threshold", "sample", "status"],
        [
            (
                s.scope,
                "n/a" if s.value is None else f"{s.value:.4g}",
                "n/a" if s.threshold is None else f"{s.threshold:.4g}",
                s.sample_size,
                s.status,
            )
            for s in scopes
        ],
    )


def check_result(
    check_name: str,
    asset: str,
    scopes: list[Scope],
    *,
    severity: dg.AssetCheckSeverity,
    what: str,
    unit: str = "",
    fails_below: bool = False,
    min_sample: int = 1,
    note: str = "",
    metadata: dict[str, Any] | None = None,
    scope_kind: str = "model",
    description: str | None = None,
) -> dg.AssetCheckResult:
    """The AssetCheckResult of a check that judged `scopes` (the hour as a whole first); scopes other
    than `all` are models unless `scope_kind` names what they are (e.g. rubric). `description`
    replaces the generated line for checks whose figures read differently (a value against its
    expected value for the hour of the week, not against a threshold)."""
    breaches = [s for s in scopes if s.failed]
    overall = next((s for s in scopes if s.scope == "all"), scopes[0] if scopes else None)
    shown = overall
    if breaches and not (overall and overall.failed):  # only models failed: show the worst of them
        shown = max(breaches, key=lambda s: _excess(s, fails_below))
    return dg.AssetCheckResult(
        check_name=check_name,
        asset_key=asset,
        passed=not breaches,
        severity=severity,
        description=description
        or (describe(scopes, what, unit, fails_below, note, scope_kind) if scopes else note or "nothing to judge"),
        metadata={
            "value": shown.value if shown else None,
            "threshold": shown.threshold if shown else None,
            "sample_size": shown.sample_size if shown else 0,
            "scope": dg.MetadataValue.text(shown.scope if shown else "all"),
            "min_sample": dg.MetadataValue.text(str(min_sample)),  # text: not worth a plot
            "breaches": [s.breach() for s in breaches],
            "scopes": dg.MetadataValue.md(scopes_table(scopes, unit)),
            **(metadata or {}),
        },
    )


def _excess(scope: Scope, fails_below: bool) -> float:
    if scope.value is None or not scope.threshold:
        return float("inf")
    ratio = scope.value / scope.threshold
    return 1 / ratio if fails_below and ratio else ratio
