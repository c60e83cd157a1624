"""Where alerts go: Slack through slack_sdk when SLACK_BOT_TOKEN is set, else a dry-run file.

What the client retries: nothing. slack_sdk's default ConnectionErrorRetryHandler re-sends a
request after a connection reset, and Slack may already have posted it: a duplicate in the
channel. So the client makes exactly one request per attempt and reports what it knows:
- refused (an HTTP error answer such as 429 or 5xx, or a refused connection): not posted, retry
  later (a 429's Retry-After is honoured, capped);
- unknown (reset after the request went out, timeout): maybe posted. Every message carries its
  notification id in Slack message metadata, and before trying again the sensor looks for that
  id in the channel's recent history (`find_posted`).

What it never keeps: Slack's answer body. slack_sdk puts the first 100 characters of a non-JSON
error body (a proxy's error page may echo the request's `Authorization: Bearer xoxb-...`) into
its exception and its error log; cut before the token's end, it defeats masking by exact match.
So an error says only the HTTP status and Slack's error code, every error text and slack_sdk log
line is masked for anything token-shaped (`redact`), and slack_sdk logs through a logger of ours.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.error import URLError

import dagster as dg

if TYPE_CHECKING:  # slack_sdk takes 0.1 s to import: only a process that sends pays for it, not every run's
    from slack_sdk import WebClient

EVENT_TYPE = "llm_monitoring_alert"
# Slack tokens (xoxb-, xoxp-, xoxa-, ...; a cut one too) and whatever follows "Bearer".
_TOKENISH = re.compile(r"xox[a-z]-[A-Za-z0-9-]*|\b(?i:bearer)\s+\S+")
_SLACK_ERROR_CODE = re.compile(r"[a-z0-9_.]{1,64}")  # Slack's own codes: ratelimited, channel_not_found
_BODY = re.compile(r"(non-JSON format:).*", re.S)


def redact(text: str, token: str | None = None) -> str:
    """`text` with the token, anything shaped like a Slack token and any Bearer credential masked."""
    if token:
        text = text.replace(token, "***")
    return _TOKENISH.sub(lambda m: "Bearer ***" if m.group(0)[:1] in "Bb" else "xox*-***", text)


class _RedactBodies(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(_BODY.sub(r"\1 (body not kept)", record.getMessage())), ()
        return True


# slack_sdk logs request and response bodies at DEBUG when its logger's own level allows it, and the
# start of a non-JSON error body at ERROR: it logs here instead, at WARNING and above, masked.
_SDK_LOG = logging.getLogger("monitoring_pipeline.slack_sdk")
_SDK_LOG.setLevel(logging.WARNING)
_SDK_LOG.addFilter(_RedactBodies())


class DeliveryError(Exception):
    """The message was not delivered, or may not have been. Never holds the token."""

    def __init__(self, message: str, outcome_known: bool, retry_after_s: float | None = None):
        super().__init__(redact(message))
        self.outcome_known = outcome_known
        self.retry_after_s = retry_after_s


class AlertDelivery(dg.ConfigurableResource):
    """Reads the token (and SLACK_API_URL, for a Slack-compatible server) at send time, never at
    import, and never puts it in an error, a log or a message."""

    token_env_var: str = "SLACK_BOT_TOKEN"
    api_url_env_var: str = "SLACK_API_URL"
    timeout_s: float = 10

    def destination(self, dry_run_file: str) -> str:
        return "slack" if os.environ.get(self.token_env_var) else dry_run_file

    def _client(self) -> tuple[WebClient, str]:
        from slack_sdk import WebClient

        token = os.environ[self.token_env_var]
        base_url = os.environ.get(self.api_url_env_var) or WebClient.BASE_URL
        return WebClient(
            token=token,
            base_url=base_url.rstrip("/") + "/",
            timeout=round(self.timeout_s),
            retry_handlers=[],
            logger=_SDK_LOG,
        ), token

    def send(self, notification_id: str, channel: str, text: str, blocks: list, dry_run_file: str) -> str | None:
        """Post one message; returns Slack's ts. Raises DeliveryError saying whether it may have arrived."""
        if not os.environ.get(self.token_env_var):
            _append_dry_run(
                Path(dry_run_file),
                {"notification_id": notification_id, "channel": channel, "text": text, "blocks": blocks},
            )
            return None
        client, token = self._client()
        try:
            response = client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=blocks,
                unfurl_links=False,
                metadata={"event_type": EVENT_TYPE, "event_payload": {"notification_id": notification_id}},
            )
            return response.get("ts")
        except Exception as err:
            raise _classify(err, token) from None

    def find_posted(self, notification_id: str, channel: str, since: datetime | None, dry_run_file: str) -> bool:
        """Whether a message with this notification id is already in the channel (or the dry-run file)."""
        if not os.environ.get(self.token_env_var):
            path = Path(dry_run_file)
            return path.exists() and any(
                json.loads(line).get("notification_id") == notification_id
                for line in path.read_text(encoding="utf-8").splitlines()
                if line
            )
        client, token = self._client()
        try:
            channel_id = _channel_id(client, channel)
            oldest = f"{since.replace(tzinfo=timezone.utc).timestamp() - 300:.6f}" if since else None
            cursor = None
            while True:
                page = client.conversations_history(
                    channel=channel_id, oldest=oldest, include_all_metadata=True, limit=200, cursor=cursor
                )
                messages: list[dict] = page.get("messages", [])
                for message in messages:
                    payload = (message.get("metadata") or {}).get("event_payload") or {}
                    if payload.get("notification_id") == notification_id:
                        return True
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    return False
        except Exception as err:
            raise _classify(err, token) from None


def _channel_id(client: WebClient, channel: str) -> str:
    """conversations.history takes ids; the configuration may name channels (#alerts)."""
    if not channel.startswith("#"):
        return channel
    cursor = None
    while True:
        page = client.conversations_list(types="public_channel,private_channel", limit=1000, cursor=cursor)
        channels: list[dict] = page.get("channels", [])
        for conv in channels:
            if conv.get("name") == channel[1:]:
                return conv["id"]
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            raise DeliveryError(f"channel {channel} not found (is the bot a member?)", outcome_known=True)


def _classify(err: Exception, token: str) -> DeliveryError:
    from slack_sdk.errors import SlackApiError

    if isinstance(err, DeliveryError):
        return err
    if isinstance(err, SlackApiError):  # Slack answered: it did not post
        response = err.response
        error = response.data.get("error", "") if isinstance(response.data, dict) else ""
        if error and not _SLACK_ERROR_CODE.fullmatch(str(error)):  # the start of a body (a proxy's page), not a code
            error = "(not a Slack answer; body not kept)"
        retry_after = _retry_after(response.headers) if response.status_code == 429 else None
        return DeliveryError(_clean(f"HTTP {response.status_code} {error}".strip(), token), True, retry_after)
    reason = getattr(err, "reason", err) if isinstance(err, URLError) else err
    refused = isinstance(reason, ConnectionRefusedError)
    kind = "timeout" if isinstance(reason, (TimeoutError, socket.timeout)) else type(reason).__name__
    return DeliveryError(_clean(f"{kind}: {reason}", token), outcome_known=refused)


def _retry_after(headers) -> float | None:
    for key, value in (headers or {}).items():
        if key.lower() == "retry-after":
            value = value[0] if isinstance(value, list) else value
            try:
                seconds = float(value)
            except (TypeError, ValueError):
                return None
            return seconds if seconds >= 0 else None
    return None


def _clean(text: str, token: str) -> str:
    return redact(text, token)


def _append_dry_run(path: Path, message: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **message}
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
