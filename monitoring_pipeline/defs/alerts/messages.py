"""Alert messages: Slack Block Kit with a plain-text fallback, inside Slack's limits.

One message per run and channel groups every notice the run produced; each section is one check
on one asset and hour, with the scopes (the hour as a whole, each model) that explain it.

Model names come from the apps' logs and run failure texts from anywhere: every such string goes
through `escape` before it enters mrkdwn (sections, context lines, the fallback `text`), so only
the project's own `<!here>` can page anyone.
"""

from collections import defaultdict
from urllib.parse import quote

from monitoring_pipeline.defs.alerts.incidents import OPEN, REPEAT, RESOLVED, Notice

MAX_BLOCKS = 50
SECTION_TEXT_LIMIT = 3000
MESSAGE_TEXT_LIMIT = 40000  # all text in the message, blocks and fallback together
FALLBACK_LIMIT = 3000  # the plain `text`, shown in notifications
HEADER_LIMIT = 150
MAX_LINKS = 20  # hour links in one context line (each ~110 characters; a section holds 3,000)
MAX_CHECK_SECTIONS = 20  # each section comes with a context line: 2 blocks
TITLES = {OPEN: "Firing", REPEAT: "Still firing", RESOLVED: "Resolved"}
ICONS = {OPEN: ":rotating_light:", REPEAT: ":repeat:", RESOLVED: ":white_check_mark:"}
# Checks whose scopes are not models, and what a firing one means where its name does not say it.
SCOPE_KINDS = {"judge_human_agreement": "rubric"}
PLAIN_VALUES = {"judge_human_agreement"}  # a kappa, not a share: 0.35, not 35 %
HINTS = {
    "judge_human_agreement": "The LLM judge disagrees with the reviewers: do not trust judge_verdicts "
    "or judge_bad_rate for these rubrics until the rubric or the judge model is fixed."
}


def escape(text: object) -> str:
    """An untrusted string made inert in Slack mrkdwn, on one line: `&`, `<`, `>` escaped (no
    `<!channel>`, no disguised `<url|label>` link), backticks made quotes (it cannot leave the code
    span it is shown in), every run of whitespace (newlines too) one space."""
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("`", "'")
    return " ".join(text.split())


def _num(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and value < 1:
        return f"{value:.2%}" if value else "0"
    return f"{value:,.0f}" if isinstance(value, (int, float)) and abs(value) >= 10 else f"{value:.3g}"


def hour_label(partition: str | None, window: str | None = None) -> str:
    """The hour a notice is about; for an unpartitioned check, the window it judged."""
    if partition:
        return f"{partition[:10]} {partition[11:16]} UTC"
    return window or "all hours"


def asset_link(dagster_url: str, asset: str, partition: str | None) -> str:
    """The asset in the UI, on `partition` when given. `?partition=K` alone shows the *latest*
    partition's metadata; the partitions view selects hour K."""
    url = f"{dagster_url.rstrip('/')}/assets/{quote(asset)}"
    return f"{url}?view=partitions&partition={quote(partition, safe='')}" if partition else url


def run_link(dagster_url: str, run_id: str) -> str:
    return f"{dagster_url.rstrip('/')}/runs/{quote(run_id, safe='')}"


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cap(text, SECTION_TEXT_LIMIT)}}


def _context(text: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _cap(text, SECTION_TEXT_LIMIT)}]}


def _scope_lines(notices: list[Notice]) -> list[str]:
    """The hour first, then the models that drove it, worst first."""
    ordered = sorted(notices, key=lambda n: (n.scope != "all", -(n.value or 0)))
    lines = []
    for n in ordered:
        num = (lambda v: "n/a" if v is None else f"{v:.3g}") if n.check in PLAIN_VALUES else _num
        scope = "all traffic" if n.scope == "all" else f"{SCOPE_KINDS.get(n.check, 'model')} `{escape(n.scope)}`"
        if n.kind == RESOLVED:
            lines.append(
                f"• {scope}: back within threshold {num(n.threshold)}"
                + (f" (now {num(n.value)}, n={n.sample_size})" if n.value is not None else "")
            )
        elif n.detail:  # "error rate 0.90% vs 0.20% expected for Wednesday 15:00 (4 weeks), above 0.52%"
            lines.append(f"• {scope}: {n.detail} (sample {n.sample_size})")
        else:
            lines.append(f"• {scope}: *{num(n.value)}* vs threshold {num(n.threshold)} (sample {n.sample_size})")
    return lines


def _check_section(kind: str, group: list[Notice], dagster_url: str, run_id: str | None) -> list[dict]:
    first = group[0]
    badge = ":rotating_light: *CRITICAL*" if first.critical and kind != RESOLVED else ICONS[kind]
    check, asset = escape(first.check), escape(first.asset)
    head = f"{badge} *{TITLES[kind]}:* `{check}` on `{asset}` for *{escape(hour_label(first.partition, first.window))}*"
    body, shown = [head], 0
    if kind != RESOLVED and first.check in HINTS:
        body.append(HINTS[first.check])
    for line in _scope_lines(group):
        if len("\n".join(body)) + len(line) > SECTION_TEXT_LIMIT - 60:
            break
        body.append(line)
        shown += 1
    if shown < len(group):
        body.append(f"…and {len(group) - shown} more scopes")
    link = asset_link(dagster_url, first.asset, first.partition)
    where = f"{asset} {escape(first.partition)}" if first.partition else asset
    links = f"<{link}|Open {where} in Dagster>"
    if run_id:
        links += f" · <{run_link(dagster_url, run_id)}|the run that checked it>"
    return [_section("\n".join(body)), _context(links)]


def checks_message(
    notices: list[Notice], dagster_url: str, title: str, run_id: str | None = None
) -> tuple[str, list[dict]]:
    """(text, blocks) for the notices one run produced for one channel."""
    groups: dict[tuple, list[Notice]] = defaultdict(list)
    for n in notices:
        groups[(n.kind, n.check, n.asset, n.partition)].append(n)
    order = {OPEN: 0, REPEAT: 1, RESOLVED: 2}
    keys = sorted(groups, key=lambda k: (order[k[0]], not groups[k][0].critical, k[1], k[2], k[3] or ""))
    critical = any(n.critical and n.kind != RESOLVED for n in notices)

    counts = {kind: len({(k[1], k[2]) for k in keys if k[0] == kind}) for kind in order}
    summary = ", ".join(f"{counts[k]} {TITLES[k].lower()}" for k in order if counts[k])
    header = f"{'CRITICAL' if critical else 'Monitoring'}: {summary} — {title}"
    blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": _cap(header, HEADER_LIMIT)}}]
    for key in keys[:MAX_CHECK_SECTIONS]:
        blocks.extend(_check_section(key[0], groups[key], dagster_url, run_id))
    if len(keys) > MAX_CHECK_SECTIONS:
        rest: dict[str, int] = defaultdict(int)
        for kind, check, _, _ in keys[MAX_CHECK_SECTIONS:]:
            rest[f"{TITLES[kind].lower()} `{escape(check)}`"] += 1
        blocks.append(
            _section(
                f"…and {len(keys) - MAX_CHECK_SECTIONS} more: "
                + ", ".join(f"{what} ×{n}" for what, n in sorted(rest.items()))
            )
        )

    names = sorted({escape(n.check) for n in notices})
    text = (
        f"{'<!here> CRITICAL' if critical else 'Monitoring'}: {summary} — {escape(title)}. Checks: {', '.join(names)}"
    )
    return _cap(text, FALLBACK_LIMIT), _fit(blocks)


def simple_message(
    title: str, lines: list[str], link: str | list[tuple[str, str]] | None, critical: bool = False
) -> tuple[str, list[dict]]:
    """A message about the pipeline itself (a failed run, missing logs, a test). `lines` are plain
    text (a run's failure text among them): escaped, one line each. `link` is one URL, or
    (label, URL) pairs, one per hour the message is about."""
    lines = [escape(line) for line in lines]
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": _cap(title, HEADER_LIMIT)}},
        _section("\n".join(lines)),
    ]
    if isinstance(link, str):
        blocks.append(_context(f"<{link}|Open in Dagster>"))
    elif link:
        shown = " · ".join(f"<{url}|{escape(label)}>" for label, url in link[:MAX_LINKS])
        more = f" · …and {len(link) - MAX_LINKS} more" if len(link) > MAX_LINKS else ""
        blocks.append(_context(f"Open in Dagster: {shown}{more}"))
    text = f"{'<!here> ' if critical else ''}{escape(title)}: " + " ".join(lines)
    return _cap(text, FALLBACK_LIMIT), blocks


def _fit(blocks: list[dict]) -> list[dict]:
    """Drop trailing blocks until the message is inside Slack's block and character limits."""

    def size(bs):
        return sum(
            len(b.get("text", {}).get("text", "")) + sum(len(e["text"]) for e in b.get("elements", [])) for b in bs
        )

    kept = blocks[:MAX_BLOCKS]
    while len(kept) > 2 and size(kept) > MESSAGE_TEXT_LIMIT - FALLBACK_LIMIT:
        kept = kept[:-1]
    if len(kept) < len(blocks):
        kept = kept[: MAX_BLOCKS - 1] + [
            _section(f"…{len(blocks) - len(kept)} more block(s) left out to fit Slack's limits")
        ]
    return kept
