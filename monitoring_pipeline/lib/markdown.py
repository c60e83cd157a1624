"""Markdown tables for materialization and check metadata (the Dagster UI renders them)."""


def cell(value, limit: int | None = None) -> str:
    """One table cell: pipes escaped, line breaks flattened, optionally cut to `limit` characters."""
    text = "" if value is None else str(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("\r", " ")
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def table(header: list[str], rows, limit: int | None = None) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v, limit) for v in row) + " |" for row in rows]
    return "\n".join(lines)
