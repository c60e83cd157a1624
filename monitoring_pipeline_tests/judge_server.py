"""A local OpenAI-compatible server for the LLM judge's tests: POST /v1/chat/completions.

It records every request (headers and JSON body) and answers by default with a verdict the test
chooses from the user message (`decide(text) -> "good" | "bad"`). Scripted behaviours are consumed
one per request first:
  ("status", code, headers, body)  that HTTP status, e.g. 429 with {"Retry-After": "0.3"}, or 500
  ("content", text)                200 with this assistant content (garbage, a wrong verdict, ...)
`always` (a behaviour) answers every request once the script is used up; `delay_s` holds each
answer that long, and `max_in_flight` says how many requests were ever open at once.
"""

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

from monitoring_pipeline_tests.local_http import LocalServer, send_json


class JudgeServer(LocalServer):
    def __init__(self, decide: Callable[[str], str] | None = None):
        self.decide = decide or (lambda text: "bad" if "wrong" in text else "good")
        self.requests: list[dict] = []
        self.script: list[tuple] = []
        self.always: tuple | None = None
        self.delay_s = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        super().__init__(self._handler())

    @property
    def url(self) -> str:
        return self.base_url + "/v1"

    def calls(self) -> int:
        return len(self.requests)

    def bodies(self) -> str:
        """Everything the judge was sent, bodies and headers, as one string to grep."""
        with self._lock:
            return "\n".join(json.dumps(r) for r in self.requests)

    def _next(self) -> tuple | None:
        with self._lock:
            return self.script.pop(0) if self.script else self.always

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with server._lock:
                    server.requests.append(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                            "at": time.monotonic(),
                        }
                    )
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.delay_s)
                    self._answer(body)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self, body: dict):
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": "not found"}})
                behaviour = server._next()
                if behaviour and behaviour[0] == "status":
                    _, code, headers, payload = behaviour
                    return self._send(code, payload or {"error": {"message": f"status {code}"}}, headers)
                user = body["messages"][-1]["content"]
                if behaviour and behaviour[0] == "content":
                    content = behaviour[1]
                else:
                    verdict = server.decide(user)
                    content = json.dumps({"verdict": verdict, "reason": f"judged {verdict}"})
                self._send(
                    200,
                    {
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body.get("model", ""),
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": content},
                            }
                        ],
                        "usage": {"prompt_tokens": 40, "completion_tokens": 2, "total_tokens": 42},
                    },
                )

            def _send(self, code: int, payload: dict, headers: dict | None = None):
                send_json(self, code, payload, headers)

        return Handler
