"""Alert text: a Block Kit message with a plain-text fallback, inside Slack's limits."""

from urllib.parse import quote

from monitoring_pipeline.alerts.evaluations import FailedCheck

SECTION_TEXT_LIMIT = 3000  # characters per section text


def _num(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and value < 1:
        return f"{value:.2%}" if value else "0"
    return f"{value:,.0f}" if isinstance(value, (int, float)) and abs(value) >= 10 else f"{value:.3g}"


def hour_label(partition: str | None) -> str:
    return f"{partition[:10]} {partition[11:16]} UTC" if partition else "unpartitioned"


def asset_link(dagster_url: str, asset: str, partition: str | None) -> str:
    url = f"{dagster_url.rstrip('/')}/assets/{quote(asset)}"
    return f"{url}?partition={quote(partition)}" if partition else url


def failed_check_message(failed: FailedCheck, dagster_url: str) -> tuple[str, list[dict]]:
    """(text, blocks) for one failed check evaluation."""
    critical = failed.severity == "ERROR"
    md = failed.metadata
    badge = ":rotating_light: *CRITICAL*" if critical else ":warning: *Warning*"
    text = (
        f"{'CRITICAL' if critical else 'Warning'}: check {failed.check} failed on {failed.asset} for "
        f"{hour_label(failed.partition)}: value {_num(md.get('value'))} vs threshold {_num(md.get('threshold'))} "
        f"(sample {md.get('sample_size', 'n/a')})"
    )
    detail = [f"{badge} `{failed.check}` failed on `{failed.asset}` for *{hour_label(failed.partition)}*",
              f"value *{_num(md.get('value'))}* vs threshold {_num(md.get('threshold'))}, "
              f"sample size {md.get('sample_size', 'n/a')}"]
    for breach in md.get("breaches") or []:
        detail.append(f"• {breach['scope']}: {_num(breach['value'])} vs {_num(breach['threshold'])} "
                      f"(n={breach['sample_size']})")
    link = asset_link(dagster_url, failed.asset, failed.partition)
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(detail)[:SECTION_TEXT_LIMIT]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{link}|Open in Dagster> · run {failed.run_id[:8]}"}]},
    ]
    return text, blocks
