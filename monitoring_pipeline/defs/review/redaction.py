"""Redaction of prompts and responses, set-based in DuckDB: a `redact(text)` macro on the connection.

Patterns run in order (tokens before numbers, so a key's digits are never mistaken for a phone);
each match becomes a typed placeholder. Card candidates are replaced only when their digits pass
the Luhn check, so order and invoice numbers stay readable. RE2 has no look-around, hence the
explicit shapes below instead of one clever expression.
"""

import duckdb

PLACEHOLDERS = ("[API_KEY]", "[TOKEN]", "[SECRET]", "[EMAIL]", "[IBAN]", "[CARD]", "[IP]", "[PHONE]")

HEX = "[0-9A-Fa-f]{1,4}"

# (pattern, replacement) in the order applied; \1 refers to a kept prefix such as "Bearer ".
PATTERNS: tuple[tuple[str, str], ...] = (
    # API keys and tokens with a recognisable prefix
    (r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----", "[SECRET]"),
    (r"\bsk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_\-]{16,}", "[API_KEY]"),
    (r"\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,}", "[API_KEY]"),
    (r"\bxox[abposre]-[A-Za-z0-9\-]{10,}", "[API_KEY]"),
    (r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}\b", "[API_KEY]"),
    (r"\bgh[pousr]_[A-Za-z0-9]{30,}", "[API_KEY]"),
    (r"\bgithub_pat_[A-Za-z0-9_]{20,}", "[API_KEY]"),
    (r"\bglpat-[A-Za-z0-9_\-]{20,}", "[API_KEY]"),
    (r"\bAIza[0-9A-Za-z_\-]{30,}", "[API_KEY]"),
    (r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}", "[TOKEN]"),
    (r"(?i)(\b(?:bearer|token)\s+)[A-Za-z0-9._~+/=\-]{16,}", r"\1[TOKEN]"),
    (
        r"(?i)(\b(?:api[_\-]?key|apikey|access[_\-]?key(?:[_\-]?id)?|secret(?:[_\-]?key)?|client[_\-]?secret"
        r"|password|passwd|pwd|auth[_\-]?token|token)\b[\"']?\s*[:=]\s*[\"']?)[^\s\"',;]{6,}",
        r"\1[SECRET]",
    ),
    # any remaining long opaque string (AWS secret keys, session tokens)
    (r"\b[A-Za-z0-9+/_\-]{40,}={0,2}", "[TOKEN]"),
    # contact details
    (r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}", "[EMAIL]"),
    (r"\b[A-Z]{2}[0-9]{2}(?:[ \-]?[A-Z0-9]{4}){2,7}(?:[ \-]?[A-Z0-9]{1,3})?\b", "[IBAN]"),
    (r"\b[A-Za-z]{2}[0-9]{2}(?:[ \-]?[0-9]{4}){3,7}(?:[ \-]?[0-9]{1,3})?\b", "[IBAN]"),  # typed in lower case
    # (cards: the Luhn step, see CARD_STEP)
    (rf"\b(?:{HEX}:){{7}}{HEX}\b|\b(?:{HEX}:){{1,7}}:(?:{HEX}(?::{HEX}){{0,6}}\b)?|::{HEX}(?::{HEX}){{0,6}}\b", "[IP]"),
    (
        r"\b(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\b",
        "[IP]",
    ),
    (r"\+[0-9]{1,3}(?:[ .\-]?\(?[0-9]{1,5}\)?){2,6}", "[PHONE]"),
    (r"\b00[1-9][0-9]{0,2}(?:[ .\-][0-9]{1,8}){1,5}\b", "[PHONE]"),
    (r"\([0-9]{2,5}\)[ .\-]?[0-9]{3,4}[ .\-]?[0-9]{3,4}", "[PHONE]"),
    (r"\b[0-9]{3}[ .\-][0-9]{3}[ .\-][0-9]{4}\b", "[PHONE]"),
    (r"\b0[0-9](?:[ .\-]?[0-9]{2}){4}\b", "[PHONE]"),
    (r"\b0[0-9]{1,4}[ .\-/][0-9]{3,4}[ .\-]?[0-9]{3,4}\b", "[PHONE]"),
    (r"\b0[0-9]{9,10}\b", "[PHONE]"),  # national number without separators
)
# The Luhn step runs just before the IP patterns: after tokens and IBANs, before phones could
# claim a card's digits.
CARD_STEP = next(i for i, (_, replacement) in enumerate(PATTERNS) if replacement == "[IP]")
SEP = r"[ .\-]{0,2}"
CARD_CANDIDATE = (
    rf"\b[0-9]{{4}}{SEP}[0-9]{{4}}{SEP}[0-9]{{4}}{SEP}[0-9]{{4}}(?:{SEP}[0-9]{{3}})?\b"
    rf"|\b[0-9]{{4}}{SEP}[0-9]{{6}}{SEP}[0-9]{{4,5}}\b|\b[0-9]{{13,19}}\b"
)


def _lit(text: str) -> str:
    """A SQL string literal of one of the constant patterns above (never of data)."""
    return "'" + text.replace("'", "''") + "'"


MACROS = [
    # Luhn: double every second digit from the right, the sum must end in 0.
    """CREATE OR REPLACE TEMP MACRO luhn_ok(s) AS (
        length(regexp_replace(s, '[^0-9]', '', 'g')) BETWEEN 13 AND 19 AND
        list_sum(list_transform(
            string_split(reverse(regexp_replace(s, '[^0-9]', '', 'g')), ''),
            lambda d, i: CASE WHEN i % 2 = 0 THEN (CASE WHEN d::INT * 2 > 9 THEN d::INT * 2 - 9 ELSE d::INT * 2 END)
                             ELSE d::INT END)) % 10 = 0)""",
    f"""CREATE OR REPLACE TEMP MACRO redact_cards(s) AS
        list_reduce(list_filter(regexp_extract_all(s, {_lit(CARD_CANDIDATE)}), lambda c: luhn_ok(c)),
                    lambda acc, c: replace(acc, c, '[CARD]'), s)""",
]


def _redact_expression() -> str:
    expr = "s"
    for i, (pattern, replacement) in enumerate(PATTERNS):
        if i == CARD_STEP:
            expr = f"redact_cards({expr})"
        expr = f"regexp_replace({expr}, {_lit(pattern)}, {_lit(replacement)}, 'g')"
    return expr


REDACT_MACRO = f"CREATE OR REPLACE TEMP MACRO redact(s) AS ({_redact_expression()})"


def install(conn: duckdb.DuckDBPyConnection) -> None:
    """Define luhn_ok(), redact_cards() and redact() on this connection (temp: gone when it closes)."""
    for sql in MACROS:
        conn.execute(sql)
    conn.execute(REDACT_MACRO)


def redact_texts(conn: duckdb.DuckDBPyConnection, texts: list[str | None]) -> list[str | None]:
    """Redact a list of texts in one query (for tests and small callers)."""
    install(conn)
    rows = conn.execute(
        "SELECT redact(t) FROM (SELECT unnest($texts) AS t, generate_subscripts($texts, 1) AS i) ORDER BY i",
        {"texts": texts},
    ).fetchall()
    return [r[0] for r in rows]
