"""The LLM judge's client: any OpenAI-compatible chat completions API (OpenAI, vLLM, Ollama,
LiteLLM, ...), through the `openai` package with its own retries off, so that 429 (Retry-After)
and 5xx are retried here, within the run, with a backoff the configuration sets.

The key is read from the environment when a call is made, sent only as the Authorization header,
and scrubbed from every error or reason stored, logged or shown.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dagster as dg

from monitoring_pipeline.config import JudgeConfig

if TYPE_CHECKING:  # imported where a call is made: openai takes seconds to import, and most hours judge nothing
    import openai
    from openai.types.chat import ChatCompletionMessageParam

SYSTEM = (
    "You are a strict reviewer of an AI assistant's answers. You are given a rubric, a user's prompt "
    "and the assistant's response (personal data is replaced by placeholders such as [EMAIL]). "
    'Answer with a JSON object only: {"verdict": "good" or "bad", "reason": "<one sentence>"}.'
)
NO_KEY = "no-key"  # local servers (vLLM, Ollama) take any key; the client insists on one


@dataclass(frozen=True)
class Outcome:
    """One judge call: a verdict and its reason, or an error; latency and tokens either way."""

    verdict: str | None
    reason: str | None
    error: str | None
    latency_ms: float
    tokens: int | None
    attempts: int


class JudgeClient(dg.ConfigurableResource):
    """Where the judge is: base URL, model and key from MONITORING_JUDGE_* variables, read when a
    call is made (never at import, and the key never in this resource's config)."""

    url_env: str = "MONITORING_JUDGE_URL"
    model_env: str = "MONITORING_JUDGE_MODEL"
    api_key_env: str = "MONITORING_JUDGE_API_KEY"

    @property
    def base_url(self) -> str:
        return os.environ.get(self.url_env, "").strip()

    @property
    def model(self) -> str:
        return os.environ.get(self.model_env, "").strip()

    @property
    def configured(self) -> bool:
        return bool(self.base_url and self.model)

    def _key(self) -> str:
        return os.environ.get(self.api_key_env, "")

    def scrub(self, text: str | None) -> str | None:
        """`text` without the key, should a server or an exception have echoed it."""
        key = self._key()
        return text.replace(key, "[JUDGE_API_KEY]") if text and key else text

    def client(self, timeout_s: float) -> openai.OpenAI:
        import openai

        return openai.OpenAI(base_url=self.base_url, api_key=self._key() or NO_KEY, max_retries=0, timeout=timeout_s)

    def judge(self, client: openai.OpenAI, rubric: str, prompt: str | None, response: str | None, cfg: JudgeConfig):
        """One (request, rubric) judged, retried on 429 and 5xx; never raises."""
        import openai

        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": SYSTEM},
            {
                "role": "user",
                "content": json.dumps({"rubric": rubric, "prompt": prompt or "", "response": response or ""}),
            },
        ]
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            wait = None
            try:
                reply = client.chat.completions.create(
                    model=self.model, messages=messages, temperature=0, response_format={"type": "json_object"}
                )
            except openai.APIStatusError as err:
                if err.status_code == 429 or err.status_code >= 500:
                    wait = retry_wait(err.response.headers.get("retry-after"), attempt, cfg)
                error = f"HTTP {err.status_code}: {err.message}"
            except openai.APITimeoutError:
                error = f"timeout after {cfg.timeout_s:g} s"
            except openai.APIConnectionError as err:
                error = f"connection failed: {err.__cause__ or err}"
            except Exception as err:  # a judge that misbehaves must not fail the hour
                error = f"{type(err).__name__}: {err}"
            else:
                verdict, reason, invalid = parse(reply)
                usage = reply.usage
                return Outcome(
                    verdict,
                    self.scrub(reason),
                    self.scrub(invalid),
                    _ms(started),
                    usage.total_tokens if usage else None,
                    attempt,
                )
            if wait is None or attempt >= cfg.max_attempts:
                return Outcome(None, None, self.scrub(error[:500]), _ms(started), None, attempt)
            time.sleep(wait)


def retry_wait(retry_after: str | None, attempt: int, cfg: JudgeConfig) -> float:
    """Retry-After (seconds) when the server sends one, capped; else exponential backoff."""
    try:
        if retry_after is not None:
            return min(max(float(retry_after), 0.0), cfg.retry_after_cap_s)
    except ValueError:
        pass  # an HTTP date: back off as usual
    return cfg.backoff_s * 2 ** (attempt - 1)


def parse(reply) -> tuple[str | None, str | None, str | None]:
    """(verdict, reason, error): a verdict only from a JSON object with verdict good or bad."""
    content = reply.choices[0].message.content if reply.choices else None
    try:
        answer = json.loads(content or "")
    except ValueError:
        return None, None, f"unparsable answer: {(content or '')[:200]!r}"
    if not isinstance(answer, dict):
        return None, None, f"not a JSON object: {str(content)[:200]!r}"
    verdict = str(answer.get("verdict", "")).strip().lower()
    if verdict not in ("good", "bad"):
        return None, None, f"verdict {answer.get('verdict')!r} is not good or bad"
    reason = answer.get("reason")
    return verdict, str(reason)[:2000] if reason is not None else None, None


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
