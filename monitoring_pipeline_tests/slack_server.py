"""A local Slack-compatible Web API server for tests: records every request, and answers as told.

Behaviours, consumed one per request (then "ok" forever):
  "ok"                      200 {"ok": true, "ts": ...}
  ("status", code, headers) that HTTP status (e.g. 429 with {"Retry-After": "1.5"}, or 503)
  "drop"                    read the request, then close the connection without answering
  ("hang", seconds)         read the request, answer nothing for that long
  ("error", "channel_not_found")  200 {"ok": false, "error": ...}
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


class SlackServer:
    def __init__(self):
        self.requests: list[dict] = []
        self.behaviours: list = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address
        return f"http://{host}:{port}/api/"

    def start(self) -> "SlackServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def script(self, *behaviours) -> None:
        with self._lock:
            self.behaviours.extend(behaviours)

    def posted(self, method: str = "chat.postMessage") -> list[dict]:
        """Bodies of the requests to `method` that were answered with ok (what a user would see)."""
        return [r["body"] for r in self.requests if r["method"] == method and r["answered_ok"]]

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
                record = {"method": self.path.rsplit("/", 1)[-1], "body": body,
                          "authorization": self.headers.get("Authorization"), "answered_ok": False}
                with server._lock:
                    server.requests.append(record)
                behaviour = server._next()
                if behaviour == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if isinstance(behaviour, tuple) and behaviour[0] == "hang":
                    time.sleep(behaviour[1])
                    self.close_connection = True
                    return
                if isinstance(behaviour, tuple) and behaviour[0] == "status":
                    _, code, headers = behaviour
                    self._answer(code, {"ok": False, "error": "ratelimited" if code == 429 else "fatal_error"}, headers)
                    return
                if isinstance(behaviour, tuple) and behaviour[0] == "error":
                    self._answer(200, {"ok": False, "error": behaviour[1]})
                    return
                record["answered_ok"] = True
                self._answer(200, {"ok": True, "channel": body.get("channel"), "ts": f"{time.time():.6f}",
                                   "message": {"text": body.get("text")}})

            def _answer(self, code: int, payload: dict, headers: dict | None = None):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        return Handler
