"""The LLM judge against a local OpenAI-compatible server (the real `openai` client over real HTTP):
verdicts stored, re-runs free, retries, errors kept and retried, the cap, concurrency, a judge that
is down, what the judge is sent and what is never stored; judge_bad_rate."""

import csv
import json
import socket
import time

import dagster as dg
import duckdb
import pytest

from monitoring_pipeline.defs.alerts.sensors import slack_alert_sensor
from monitoring_pipeline.defs.ingest.assets import llm_requests
from monitoring_pipeline.defs.metrics.assets import hourly_metrics
from monitoring_pipeline.defs.review.human_quality import human_quality
from monitoring_pipeline.defs.review.inbox import review_inbox_sensor
from monitoring_pipeline.defs.review.judge import judge_verdicts
from monitoring_pipeline.defs.review.judge_agreement import judge_agreement
from monitoring_pipeline.defs.review.judge_sql import JUDGE_VERDICTS_DDL
from monitoring_pipeline.defs.review.sample import review_sample
from monitoring_pipeline.defs.review.verdicts import REVIEW_VERDICTS_DDL
from monitoring_pipeline.defs.review.verdicts_asset import review_verdicts
from monitoring_pipeline_tests.conftest import PARTITION, record
from monitoring_pipeline_tests.judge_server import JudgeServer

KEY = "sk-judge-test-key-0123456789abcdef"
HOURLY = [llm_requests, hourly_metrics, review_sample, judge_verdicts]


@pytest.fixture
def judge_server(monkeypatch):
    server = JudgeServer().start()
    monkeypatch.setenv("MONITORING_JUDGE_URL", server.url)
    monkeypatch.setenv("MONITORING_JUDGE_MODEL", "judge-1")
    monkeypatch.setenv("MONITORING_JUDGE_API_KEY", KEY)
    yield server
    server.stop()


@pytest.fixture
def hour(logs, config_file, run_hour):
    """Writes `n` requests (every third answered "wrong") with the given judge config, then
    returns a function that runs the hour (ingest, metrics, sample, judge)."""

    def setup(n: int = 6, judge: dict | None = None, prompts: dict | None = None, min_sample: int = 1):
        config_file(
            {
                "review": {"sample_rate": 1.0, "min_per_model": 0},
                "min_sample": {"judge_bad_rate": min_sample},
                "judge": {"backoff_s": 0.001, "timeout_s": 5, **(judge or {})},
            }
        )
        logs.records(
            [
                record(
                    i,
                    model="chat-large" if i % 2 else "code-small",
                    prompt=(prompts or {}).get(i, f"question {i}"),
                    response="wrong answer" if i % 3 == 0 else "right answer",
                )
                for i in range(n)
            ]
        )
        return lambda **kw: run_hour(assets=HOURLY, **kw)

    return setup


def verdicts(query) -> list[tuple]:
    return query("SELECT request_id, model, rubric, verdict, judge_model, error FROM judge_verdicts ORDER BY 1, 3")


def meta(result, key: str):
    (mat,) = result.asset_materializations_for_node("judge_verdicts")
    return mat.metadata[key].value


def bad_rate_check(result) -> dg.AssetCheckEvaluation:
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == "judge_bad_rate")


@pytest.mark.slow
def test_judge_verdicts_stored_per_request_and_rubric(judge_server, hour, query, tmp_path):
    result = hour(n=6)()
    rows = verdicts(query)
    assert len(rows) == 6 and {r[2] for r in rows} == {"quality"}
    assert {r[0]: r[3] for r in rows} == {f"req-10-{i:05d}": "bad" if i % 3 == 0 else "good" for i in range(6)}
    assert {(r[4], r[5]) for r in rows} == {("judge-1", None)}
    assert query("SELECT DISTINCT reason, tokens FROM judge_verdicts WHERE verdict = 'bad'") == [("judged bad", 42)]
    assert query("SELECT min(latency_ms) > 0 FROM judge_verdicts") == [(True,)]
    assert (meta(result, "calls"), meta(result, "judged"), meta(result, "errors"), meta(result, "tokens")) == (
        6,
        6,
        0,
        252,
    )
    # one POST per (request, rubric) to {base}/chat/completions, asking for a JSON object, with the key
    request = judge_server.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["body"]["model"] == "judge-1"
    assert request["body"]["response_format"] == {"type": "json_object"}
    assert request["headers"]["authorization"] == f"Bearer {KEY}"
    # 2 of 6 bad: 33 % > 10 %, and 1 of 3 for each model
    check = bad_rate_check(result)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["value"].value == pytest.approx(2 / 6)
    assert {b["scope"] for b in check.metadata["breaches"].value} == {"all", "chat-large", "code-small"}
    assert check.partition == PARTITION
    # the reviewer's files carry the judge's verdict and reason beside the empty human columns
    folder = tmp_path / "review" / "dt=2026-03-01" / "hour=10"
    with (folder / "review_sample.csv").open(newline="") as f:
        rows_csv = {r["request_id"]: r for r in csv.DictReader(f)}
    first = rows_csv["req-10-00000"]
    assert (first["judge_verdict"], first["judge_reason"], first["verdict"]) == ("bad", "quality: bad — judged bad", "")
    jsonl = [json.loads(line) for line in (folder / "review_sample.jsonl").read_text().splitlines()]
    assert {r["request_id"]: r["judge_verdict"] for r in jsonl}["req-10-00001"] == "good"
    assert "judged bad" in meta(result, "preview")


@pytest.mark.slow
def test_judge_verdicts_rerun_makes_no_calls_until_a_rubric_changes(judge_server, hour, query, config_file):
    run = hour(n=4)
    run()
    first = verdicts(query)
    result = run()
    assert judge_server.calls() == 4 and verdicts(query) == first
    assert (meta(result, "reused"), meta(result, "calls")) == (4, 0)
    config_file(
        {
            "review": {"sample_rate": 1.0, "min_per_model": 0},
            "judge": {
                "rubrics": [
                    {"name": "quality", "instruction": "Is it correct?"},
                    {"name": "tone", "instruction": "Is it polite?"},
                ]
            },
        }
    )
    run()
    assert judge_server.calls() == 4 + 8  # a changed instruction and a new rubric are judged again
    assert query("SELECT rubric, count(*) FROM judge_verdicts GROUP BY 1 ORDER BY 1") == [("quality", 4), ("tone", 4)]


@pytest.mark.slow
def test_judge_client_retries_429_with_retry_after_and_500(judge_server, hour, query):
    judge_server.script = [("status", 429, {"Retry-After": "0.3"}, None), ("status", 500, {}, None)]
    result = hour(n=1, judge={"concurrency": 1})()
    assert [r[3] for r in verdicts(query)] == ["bad"]
    times = [r["at"] for r in judge_server.requests]
    assert len(times) == 3 and times[1] - times[0] >= 0.3  # Retry-After honoured, not the 1 ms backoff
    assert meta(result, "attempts") == 3


@pytest.mark.slow
def test_judge_verdicts_garbage_answers_are_errors_retried_next_run(judge_server, hour, query):
    judge_server.script = [("content", "I think it is fine"), ("content", json.dumps({"verdict": "maybe"}))]
    run = hour(n=3, judge={"concurrency": 1})
    result = run()
    errors = query("SELECT request_id, verdict, error FROM judge_verdicts WHERE error IS NOT NULL ORDER BY 1")
    assert [(r[0], r[1]) for r in errors] == [("req-10-00000", None), ("req-10-00001", None)]
    assert "unparsable" in errors[0][2] and "'maybe' is not good or bad" in errors[1][2]
    assert bad_rate_check(result).metadata["sample_size"].value == 1  # errors are not guessed
    run()
    assert judge_server.calls() == 3 + 2  # only the two errors are asked again
    assert query("SELECT count(*) FROM judge_verdicts WHERE verdict IS NOT NULL AND error IS NULL") == [(3,)]


@pytest.mark.slow
def test_judge_verdicts_cap_is_reported_and_the_rest_judged_next_run(judge_server, hour, query):
    run = hour(n=5, judge={"max_calls_per_hour": 3})
    result = run()
    assert judge_server.calls() == 3 and (meta(result, "calls"), meta(result, "capped")) == (3, 2)
    capped = query(
        "SELECT count(*) FROM judge_verdicts WHERE verdict IS NULL AND error LIKE '%max_calls_per_hour (3)%'"
    )
    assert capped == [(2,)]
    run()
    assert judge_server.calls() == 5
    assert query("SELECT count(*) FROM judge_verdicts WHERE verdict IS NOT NULL") == [(5,)]


@pytest.mark.slow
def test_judge_verdicts_calls_run_concurrently_up_to_the_limit(judge_server, hour, query):
    judge_server.delay_s = 0.3
    started = time.monotonic()
    hour(n=6, judge={"concurrency": 3})()
    assert judge_server.max_in_flight == 3
    assert query("SELECT count(*) FROM judge_verdicts WHERE verdict IS NOT NULL") == [(6,)]
    assert time.monotonic() - started < 20


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("down", ["refused", "500"])
@pytest.mark.slow
def test_judge_down_leaves_the_hourly_run_green(down, judge_server, hour, query, monkeypatch):
    if down == "refused":
        monkeypatch.setenv("MONITORING_JUDGE_URL", f"http://127.0.0.1:{_closed_port()}/v1")
    else:
        judge_server.always = ("status", 500, {}, None)
    result = hour(n=3, judge={"max_attempts": 2})()
    assert result.success
    assert query("SELECT count(*) FROM llm_requests") == [(3,)] and query("SELECT count(*) FROM hourly_metrics") == [
        (1,)
    ]
    assert query("SELECT count(*), count(verdict) FROM judge_verdicts") == [(3, 0)]
    check = bad_rate_check(result)
    assert check.passed and check.description.startswith("No verdicts (3 judge error(s))")
    if down == "500":
        assert judge_server.calls() == 6  # each of the 3 tried max_attempts times


@pytest.mark.slow
def test_judge_verdicts_not_configured_materializes_nothing_to_judge(hour, query):
    result = hour(n=2)()
    assert result.success and query("SELECT count(*) FROM judge_verdicts") == [(0,)]
    assert meta(result, "configured") is False and "not configured" in meta(result, "note")
    check = bad_rate_check(result)
    assert check.passed and check.description == "No verdicts (judge not configured)."


@pytest.mark.slow
def test_judge_is_sent_only_redacted_texts(judge_server, hour):
    secret = "mail alice@example.com, key sk-proj-abcdefghijklmnopqrstuv, call +1 555 123 4567"
    hour(n=2, prompts={0: secret})()
    sent = judge_server.bodies()
    assert "alice@example.com" not in sent and "sk-proj-abcdefghijklmnopqrstuv" not in sent and "555 123" not in sent
    assert "[EMAIL]" in sent and "[API_KEY]" in sent


@pytest.mark.slow
def test_judge_key_is_sent_but_never_stored_logged_or_shown(judge_server, hour, instance, tmp_path):
    # a server that echoes the key back in an error and in a reason
    judge_server.script = [
        ("status", 401, {}, {"error": {"message": f"Incorrect API key provided: {KEY}"}}),
        ("content", json.dumps({"verdict": "good", "reason": f"auth was Bearer {KEY}"})),
    ]
    result = hour(n=3, judge={"concurrency": 1})()
    assert all(r["headers"]["authorization"] == f"Bearer {KEY}" for r in judge_server.requests)
    assert KEY.encode() not in (tmp_path / "monitoring.duckdb").read_bytes()
    logs = [str(e) for e in instance.all_logs(result.run_id)]
    assert not [entry for entry in logs if KEY in entry]
    for folder in (tmp_path / "review").rglob("review_sample.*"):
        assert KEY not in folder.read_text()
    assert any("Incorrect API key provided: [JUDGE_API_KEY]" in entry for entry in logs)
    (mat,) = result.asset_materializations_for_node("judge_verdicts")
    shown = str(mat.metadata) + "".join(str(e.metadata) for e in result.get_asset_check_evaluations())
    assert KEY not in shown and "auth was Bearer [JUDGE_API_KEY]" in shown


def test_judge_resource_reads_the_environment_when_used_not_at_import(monkeypatch):
    from monitoring_pipeline.definitions import defs

    judge = defs.resources["judge"]
    assert not judge.configured
    monkeypatch.setenv("MONITORING_JUDGE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("MONITORING_JUDGE_MODEL", "m")
    assert judge.configured and judge.model == "m"
    assert "api_key" not in json.dumps(type(judge).model_json_schema()["properties"]).replace("api_key_env", "")


def test_judge_verdicts_hour_is_in_the_hourly_job():
    from monitoring_pipeline.definitions import defs

    job = defs.resolve_job_def("hourly_monitoring")
    assert "judge_verdicts" in job.graph.node_dict


def test_judge_verdicts_config_rejects_duplicate_rubrics(config_file):
    from monitoring_pipeline.config import load_config

    path = config_file({"judge": {"rubrics": [{"name": "q", "instruction": "a"}, {"name": "q", "instruction": "b"}]}})
    with pytest.raises(ValueError, match="unique"):
        load_config(path)


# --- judge_agreement: the judge against the reviewers ---


def seed_pairs(tmp_path, bb: int, gg: int, bg: int, gb: int, rubric: str = "quality") -> None:
    """Requests with a judge verdict (first) and a human verdict (second): bb both bad, gg both
    good, bg judge bad / human good, gb judge good / human bad; plus one judge error, never paired."""
    pairs = [("bad", "bad")] * bb + [("good", "good")] * gg + [("bad", "good")] * bg + [("good", "bad")] * gb
    with duckdb.connect(str(tmp_path / "monitoring.duckdb")) as conn:
        conn.execute(JUDGE_VERDICTS_DDL)
        conn.execute(REVIEW_VERDICTS_DDL)
        judge_rows = [(f"r{i}", rubric, j) for i, (j, _) in enumerate(pairs)] + [("r-err", rubric, None)]
        conn.executemany(
            "INSERT INTO judge_verdicts VALUES (TIMESTAMP '2026-03-01 10:00', ?, 'm', ?, ?, NULL, 'judge-1', "
            "NULL, 1, 1, 'sha', now()::TIMESTAMP)",
            judge_rows,
        )
        conn.executemany(
            "INSERT INTO review_verdicts VALUES (?, TIMESTAMP '2026-03-01 10:00', 'm', ?, NULL, NULL, 'ann', 'f', 1, "
            "now()::TIMESTAMP)",
            [(f"r{i}", h) for i, (_, h) in enumerate(pairs)] + [("r-err", "bad")],
        )


def agreement(resources, instance, query):
    result = dg.materialize([judge_agreement], resources=resources, instance=instance)
    (evaluation,) = result.get_asset_check_evaluations()
    rows = query(
        "SELECT rubric, pairs, agreement, kappa, both_bad, both_good, judge_bad_human_good, judge_good_human_bad "
        "FROM judge_agreement"
    )
    return rows, evaluation


@pytest.mark.parametrize(
    "cells, expected_agreement, expected_kappa",
    [
        ((20, 15, 5, 10), 0.7, 0.4),  # p_o .7, p_e .5*.6 + .5*.4 = .5
        pytest.param((5, 5, 0, 0), 1.0, 1.0, marks=pytest.mark.slow),  # all agree
        pytest.param((0, 0, 5, 5), 0.0, -1.0, marks=pytest.mark.slow),  # all disagree
        ((0, 8, 0, 0), 1.0, None),  # one class only, both: kappa undefined, not a crash
        pytest.param((0, 6, 0, 4), 0.6, 0.0, marks=pytest.mark.slow),  # judge good to everything: no better than chance
    ],
)
def test_judge_agreement_kappa_and_confusion_matrix(
    cells, expected_agreement, expected_kappa, tmp_path, resources, instance, query
):
    seed_pairs(tmp_path, *cells)
    rows, evaluation = agreement(resources, instance, query)
    ((rubric, pairs, share, kappa, *matrix),) = rows
    assert (rubric, pairs, tuple(matrix)) == ("quality", sum(cells), cells)
    assert share == pytest.approx(expected_agreement)
    assert kappa == (None if expected_kappa is None else pytest.approx(expected_kappa))
    assert evaluation.passed  # 30 pairs needed by default; these have fewer


def test_judge_human_agreement_fails_below_min_kappa_and_alerts(tmp_path, resources, instance, query, config_file):
    config_file({"judge": {"min_kappa": 0.5, "min_pairs": 30}})
    seed_pairs(tmp_path, 20, 15, 5, 10)
    _, evaluation = agreement(resources, instance, query)
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.description.startswith("rubric quality: Cohen's kappa of judge vs reviewers 0.4 < 0.5 (n=50)")
    assert "Do not trust the LLM judge on quality" in evaluation.description
    assert evaluation.metadata["breaches"].value == [
        {"scope": "quality", "value": pytest.approx(0.4), "threshold": 0.5, "sample_size": 50}
    ]
    slack_alert_sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources=resources))
    (message,) = [json.loads(line) for line in (tmp_path / "alerts" / "dry_run.jsonl").read_text().splitlines()]
    section = message["blocks"][1]["text"]["text"]
    assert "`judge_human_agreement` on `judge_agreement`" in section and "do not trust judge_verdicts" in section
    assert "rubric `quality`: *0.4* vs threshold 0.5 (sample 50)" in section


@pytest.mark.slow
def test_judge_human_agreement_needs_min_pairs(tmp_path, resources, instance, query, config_file):
    config_file({"judge": {"min_kappa": 0.5, "min_pairs": 60}})
    seed_pairs(tmp_path, 20, 15, 5, 10)
    _, evaluation = agreement(resources, instance, query)
    assert evaluation.passed and "too little data" in evaluation.metadata["scopes"].value


@pytest.mark.slow
def test_judge_agreement_from_the_reviewers_file_the_sample_exported(
    judge_server, hour, tmp_path, resources, instance, query, config_file
):
    """End to end: judged hour -> the reviewer fills in the exported CSV (judge columns in it) and
    drops it in the inbox -> the inbox sensor's run loads it and recomputes judge_agreement."""
    hour(n=6)()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config_file(
        {"review": {"sample_rate": 1.0, "min_per_model": 0, "inbox_dir": str(inbox)}, "judge": {"min_pairs": 1}}
    )
    folder = tmp_path / "review" / "dt=2026-03-01" / "hour=10"
    with (folder / "review_sample.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:  # the reviewer agrees with the judge except on one request it called good
        row["verdict"] = "bad" if row["judge_verdict"] == "bad" or row["request_id"] == "req-10-00001" else "good"
        row["reviewer"] = "ann"
    with (inbox / "verdicts.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    tick = review_inbox_sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources=resources))
    assert len(tick.run_requests) == 1
    from monitoring_pipeline.definitions import defs

    sensor_job = defs.resolve_job_def(defs.resolve_sensor_def("review_inbox_sensor").job_name)
    assert {"review_verdicts", "human_quality", "judge_agreement"} <= set(sensor_job.graph.node_dict)
    dg.materialize([review_verdicts, human_quality, judge_agreement], resources=resources, instance=instance)
    assert query(
        "SELECT pairs, both_bad, both_good, judge_bad_human_good, judge_good_human_bad FROM judge_agreement"
    ) == [(6, 2, 3, 0, 1)]
