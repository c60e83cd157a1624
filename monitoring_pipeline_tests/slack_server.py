"""A local Slack-compatible Web API server for tests: records every request, and answers as told.

Behaviours for chat.postMessage, consumed one per post (then "ok" forever):
  "ok"                      200 {"ok": true, "ts": ...}; the message is visible in the channel
  ("status", code, headers) that HTTP status (e.g. 429 with {"Retry-After": "1.5"}, or 503); not posted
  "drop"                    post the message, then close the connection without answering (the
                            worst case of a reset: Slack got it, the client cannot know)
  ("hang", seconds)         post the message, then answer nothing for that long (a timeout)
  ("error", "channel_not_found")  200 {"ok": false, "error": ...}; not posted
  ("raw", code, body)       that HTTP status with a text/html body (a proxy's error page); not posted
conversations.list and conversations.history answer from the visible messages (with metadata).
"""

import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs

from monitoring_pipeline_tests.local_http import LocalServer, send_json


class SlackServer(LocalServer):
    def __init__(self):
        self.requests: list[dict] = []
        self.behaviours: list = []
        self.visible: list[dict] = []
        self.channels = {"#llm-alerts", "#llm-alerts-critical"}  # the workspace's channels
        self._lock = threading.Lock()
        super().__init__(self._handler())

    @property
    def url(self) -> str:
        return self.base_url + "/api/"

    def script(self, *behaviours) -> None:
        with self._lock:
            self.behaviours.extend(behaviours)

    def posted(self) -> list[dict]:
        """The messages visible in Slack, in order: what the users of the channels see."""
        with self._lock:
            return list(self.visible)

    def texts(self) -> list[str]:
        return [m["text"] for m in self.posted()]

    def attempts(self) -> int:
        return sum(1 for r in self.requests if r["method"] == "chat.postMessage")

    def _next(self):
        with self._lock:
            return self.behaviours.pop(0) if self.behaviours else "ok"

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    body = json.loads(raw or "{}")
                else:
                    body = {k: v[0] for k, v in parse_qs(raw).items()}
                method = self.path.rsplit("/", 1)[-1]
                with server._lock:
                    server.requests.append(
                        {"method": method, "body": body, "authorization": self.headers.get("Authorization")}
                    )
                if method == "conversations.list":
                    names = sorted(server.channels | {m["channel"] for m in server.posted()})
                    self._answer(200, {"ok": True, "channels": [{"id": _id(n), "name": n.lstrip("#")} for n in names]})
                    return
                if method == "conversations.history":
                    oldest = float(body.get("oldest") or 0)
                    messages = [
                        m
                        for m in server.posted()
                        if _id(m["channel"]) == body.get("channel") and float(m["ts"]) >= oldest
                    ]
                    self._answer(200, {"ok": True, "messages": messages[::-1], "has_more": False})
                    return
                behaviour = server._next()
                if isinstance(behaviour, tuple) and behaviour[0] == "status":
                    _, code, headers = behaviour
                    self._answer(code, {"ok": False, "error": "ratelimited" if code == 429 else "fatal_error"}, headers)
                    return
                if isinstance(behaviour, tuple) and behaviour[0] == "raw":
                    data = behaviour[2].encode()
                    self.send_response(behaviour[1])
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if isinstance(behaviour, tuple) and behaviour[0] == "error":
                    self._answer(200, {"ok": False, "error": behaviour[1]})
                    return
                metadata = body.get("metadata")
                message = {
                    "channel": body.get("channel"),
                    "text": body.get("text"),
                    "blocks": body.get("blocks"),
                    "metadata": json.loads(metadata) if isinstance(metadata, str) else metadata,
                    "ts": f"{time.time():.6f}",
                }
                with server._lock:
                    server.visible.append(message)
                if behaviour == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.connection.close()
                    return
                if isinstance(behaviour, tuple) and behaviour[0] == "hang":
                    time.sleep(behaviour[1])
                    self.close_connection = True
                    return
                self._answer(
                    200,
                    {
                        "ok": True,
                        "channel": _id(message["channel"]),
                        "ts": message["ts"],
                        "message": {"text": message["text"]},
                    },
                )

            def _answer(self, code: int, payload: dict, headers: dict | None = None):
                send_json(self, code, payload, headers)

        return Handler


def _id(channel: str) -> str:
    """A stable Slack-style channel id for a channel name (ids pass through)."""
    if not channel.startswith("#"):
        return channel
    return "C" + hashlib.sha1(channel.encode()).hexdigest()[:8].upper()
