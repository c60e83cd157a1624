"""Where alerts go: Slack through slack_sdk when SLACK_BOT_TOKEN is set, else a dry-run file."""

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
from slack_sdk import WebClient


class DeliveryError(Exception):
    """The alert may not have arrived; it stays pending. The message never holds the token."""


class AlertDelivery(dg.ConfigurableResource):
    """Reads the token (and SLACK_API_URL, for a Slack-compatible server) at send time, never at
    import, and never puts it in an error, a log or a message."""

    token_env_var: str = "SLACK_BOT_TOKEN"
    api_url_env_var: str = "SLACK_API_URL"
    timeout_s: int = 10

    def destination(self, dry_run_file: str) -> str:
        return "slack" if os.environ.get(self.token_env_var) else dry_run_file

    def send(self, channel: str, text: str, blocks: list, dry_run_file: str) -> None:
        token = os.environ.get(self.token_env_var)
        if not token:
            _append_dry_run(Path(dry_run_file), {"channel": channel, "text": text, "blocks": blocks})
            return
        base_url = os.environ.get(self.api_url_env_var) or WebClient.BASE_URL
        # No automatic retries: a retried request may already have been posted. Retrying is the
        # outbox's job, one tick later.
        client = WebClient(token=token, base_url=base_url.rstrip("/") + "/", timeout=self.timeout_s, retry_handlers=[])
        try:
            client.chat_postMessage(channel=channel, text=text, blocks=blocks, unfurl_links=False)
        except Exception as err:  # noqa: BLE001 - any failure means "not known delivered"
            raise DeliveryError(_describe(err, token)) from None


def _describe(err: Exception, token: str) -> str:
    response = getattr(err, "response", None)
    if response is not None:
        detail = f"HTTP {response.status_code} {response.data.get('error', '') if isinstance(response.data, dict) else ''}"
    else:
        detail = f"{type(err).__name__}: {err}"
    return detail.replace(token, "***").strip()


def _append_dry_run(path: Path, message: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **message}
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
