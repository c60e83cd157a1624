"""The evaluators, built-in and from the config, each as SQL: which rows it judges, which it flags,
and the evidence it keeps (from the redacted text, so a leak is never copied in clear).

Every text is read by one combined pattern per field (the gate); the evaluators' own patterns run
only on the rows the gate let through, which on real traffic is a small share.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from monitoring_pipeline.config import CustomEvaluator, MonitoringConfig
from monitoring_pipeline.defs.evaluation import detectors
from monitoring_pipeline.defs.review.redaction import CARD_CANDIDATE
from monitoring_pipeline.lib.db import quote_literal

WHITESPACE = r"[\s\p{Z}\x{200B}\x{FEFF}]*"
JSON_WHITESPACE = " \t\n\r"
TRAILING_COMMA = r",\s*[}\]]"  # DuckDB's json_valid accepts {"a": 1,}; a strict parser does not
TRUNCATED = ("length", "max_tokens")  # OpenAI/OTel say length; Anthropic's stop_reason says max_tokens

# Which calls an evaluator can judge, by the field it reads.
JUDGES = {
    "response": "ok AND response IS NOT NULL",
    "prompt": "prompt IS NOT NULL",
    "finish_reason": "ok",
    "json": "ok AND response IS NOT NULL AND lower(output_type) = 'json'",
}


@dataclass(frozen=True)
class Evaluator:
    name: str
    field: str  # the text it reads and quotes: prompt | response
    judges: str  # key of JUDGES
    flags: str  # SQL predicate on a judged row (columns of llm_requests); runs only where the gate matched
    evidence: str  # SQL on the redacted prompt/response, <field>_chars (lengths before redaction), finish_reason
    check: str
    threshold: float
    severity: dg.AssetCheckSeverity
    what: str
    description: str
    gate: str | None = None  # its part of the field's combined pattern, if any
    counts: bool = False  # judged on the count of flagged calls (pii_leak: any), not the rate


def _lit(pattern: str) -> str:
    return quote_literal(pattern)


def snippet(text: str, pattern: str) -> str:
    """Up to ~200 characters of (redacted) text around the first match of pattern, else its start."""
    match = f"regexp_extract({text}, {_lit(pattern)})"
    return (
        f"CASE WHEN coalesce({match}, '') = '' THEN left({text}, 160) "
        f"ELSE substr({text}, greatest(1, strpos({text}, {match}) - 60), length({match}) + 120) END"
    )


def builtins(config: MonitoringConfig) -> list[Evaluator]:
    t = config.evaluators.thresholds
    warn, error = dg.AssetCheckSeverity.WARN, dg.AssetCheckSeverity.ERROR
    refusal, injection = detectors.ci(detectors.REFUSAL), detectors.ci(detectors.PROMPT_INJECTION)
    non_card = "|".join(f"(?:{p})" for p, _ in detectors.PII_PATTERNS)
    cards = f"list_bool_or(list_transform(regexp_extract_all(response, {_lit(CARD_CANDIDATE)}), lambda c: luhn_ok(c)))"
    trimmed = f"trim(response, {_lit(JSON_WHITESPACE)})"
    return [
        Evaluator(
            "refusal", "response", "response",
            f"regexp_matches(response, {_lit(refusal)})",
            snippet("response", refusal),
            "refusal_rate", t.refusal_rate, warn, "refusal rate",
            "Share of responses that decline the task above the threshold (default 5 %).",
            gate=refusal,
        ),
        Evaluator(
            "empty_response", "response", "response",
            f"regexp_full_match(response, {_lit(WHITESPACE)})",
            "'empty or whitespace only (' || response_chars || ' characters)'",
            "empty_response_rate", t.empty_response_rate, warn, "empty response rate",
            "Share of responses that are empty or whitespace only above the threshold (default 1 %).",
        ),
        Evaluator(
            "truncated", "response", "finish_reason",
            f"lower(finish_reason) IN {tuple(TRUNCATED)!r}",
            "'finish_reason ' || finish_reason || coalesce(': …' || right(response, 120), '')",
            "truncation_rate", t.truncation_rate, warn, "truncation rate",
            "Share of calls cut off at the token limit (finish_reason length) above the threshold (default 5 %).",
        ),
        Evaluator(
            "pii_leak", "response", "response",
            f"regexp_matches(response, {_lit(non_card)}) OR coalesce({cards}, false)",
            snippet("response", detectors.PLACEHOLDER),
            "pii_leak", float(t.pii_leak), error, "responses with personal data or a secret",
            "Any response carrying an e-mail, payment card, IBAN, phone number or API key/token (critical).",
            gate=detectors.PII_GATE, counts=True,
        ),
        Evaluator(
            "prompt_injection", "prompt", "prompt",
            f"regexp_matches(prompt, {_lit(injection)})",
            snippet("prompt", injection),
            "prompt_injection_rate", t.prompt_injection_rate, warn, "prompt injection rate",
            "Share of prompts that try to override the system prompt above the threshold (default 1 %).",
            gate=injection,
        ),
        Evaluator(
            "invalid_json", "response", "json",
            f"NOT json_valid({trimmed}) OR regexp_matches({trimmed}, {_lit(TRAILING_COMMA)})",
            "left(response, 160)",
            "invalid_json_rate", t.invalid_json_rate, warn, "invalid JSON rate",
            "Share of JSON outputs (output_type json) that do not parse above the threshold (default 2 %).",
        ),
    ]  # fmt: skip


def custom(spec: CustomEvaluator) -> Evaluator:
    field = spec.field
    severity = dg.AssetCheckSeverity.ERROR if spec.severity == "error" else dg.AssetCheckSeverity.WARN
    gate = None
    if spec.regex is not None or spec.contains_any is not None:
        pattern = spec.pattern()
        flags = f"regexp_matches({field}, {_lit(pattern)})"
        evidence = snippet(field, pattern)
        gate = pattern
    elif spec.max_chars is not None:
        flags = f"length({field}) > {int(spec.max_chars)}"
        evidence = f"{field}_chars || ' characters > {int(spec.max_chars)}'"
    else:
        flags = f"length({field}) < {int(spec.min_chars or 0)}"
        evidence = f"{field}_chars || ' characters < {int(spec.min_chars or 0)}: ' || left({field}, 120)"
    return Evaluator(
        spec.name, field, field, flags, evidence, f"{spec.name}_rate", spec.threshold, severity,
        f"{spec.name} rate", f"Custom evaluator {spec.name} (config evaluators.custom): share of flagged {field}s.",
        gate=gate,
    )  # fmt: skip


def all_evaluators(config: MonitoringConfig) -> list[Evaluator]:
    return builtins(config) + [custom(spec) for spec in config.evaluators.custom]


def gate(evaluators: list[Evaluator], field: str) -> str:
    """The field's one combined pattern: a row no evaluator's pattern can match is never read again."""
    parts = [e.gate for e in evaluators if e.field == field and e.gate]
    if not parts:
        return "false"
    judged = JUDGES[field]
    return (
        f"CASE WHEN {judged} THEN regexp_matches({field}, {_lit('|'.join(f'(?:{p})' for p in parts))}) ELSE false END"
    )
