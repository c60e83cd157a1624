"""Verdict files from the inbox: good, re-dropped, changed and malformed files; the inbox sensor."""

import json
import os

import dagster as dg
import pytest

from monitoring_pipeline.defs.ingest.assets import llm_requests
from monitoring_pipeline.defs.review.human_quality import human_quality
from monitoring_pipeline.defs.review.inbox import review_inbox_sensor
from monitoring_pipeline.defs.review.sample import review_sample
from monitoring_pipeline.defs.review.verdicts_asset import review_verdicts
from monitoring_pipeline_tests.conftest import PARTITION, LogWriter, config_writer, folder_resources, record

HEADER = "request_id,verdict,category,notes,reviewer\n"


def sampled_hour(root) -> None:
    """10:00 with 10 requests (6 chat-large, 4 code-small), all in review_sample."""
    config_writer(root)({"review": {"sample_rate": 1.0}})
    LogWriter(root / "logs").records([record(i, model="chat-large" if i < 6 else "code-small") for i in range(10)])
    with dg.DagsterInstance.ephemeral() as instance:
        dg.materialize(
            [llm_requests, review_sample], partition_key=PARTITION, resources=folder_resources(root), instance=instance
        )


@pytest.fixture
def inbox(tmp_path, config_file, start_from):
    """An inbox folder and an hour whose 10 requests are all in review_sample (materialized once per
    session, the same for every test)."""
    folder = tmp_path / "inbox"
    folder.mkdir()
    config_file({"review": {"sample_rate": 1.0, "inbox_dir": str(folder)}})
    start_from("one sampled hour", sampled_hour)
    return folder


@pytest.fixture
def load(resources, instance):
    def run():
        result = dg.materialize([review_verdicts, human_quality], resources=resources, instance=instance)
        (mat,) = [
            m for m in result.get_asset_materialization_events() if m.asset_key.to_user_string() == "review_verdicts"
        ]
        return {k: v.value for k, v in mat.materialization.metadata.items()}

    return run


def rid(i: int) -> str:
    return f"req-10-{i:05d}"


def verdicts(query) -> list[tuple]:
    return query("SELECT request_id, verdict, category, notes, reviewer, model FROM review_verdicts ORDER BY 1")


def test_review_verdicts_good_csv_and_jsonl_load(inbox, load, query):
    (inbox / "ann.csv").write_text(
        HEADER + f"{rid(0)},good,,,ann\n{rid(1)},BAD, Tone ,rude reply,ann\n{rid(2)},,,,\n"
    )  # blank verdict: not reviewed yet, skipped
    (inbox / "bob.jsonl").write_text(
        json.dumps({"request_id": rid(7), "verdict": "bad", "category": "hallucination", "reviewer": "bob"}) + "\n"
    )
    meta = load()
    assert verdicts(query) == [
        (rid(0), "good", None, None, "ann", "chat-large"),
        (rid(1), "bad", "tone", "rude reply", "ann", "chat-large"),
        (rid(7), "bad", "hallucination", None, "bob", "code-small"),
    ]
    assert (meta["files"], meta["new"], meta["changed"], meta["rejected"]) == (2, 3, 0, 0)
    assert query("SELECT count(*) FROM review_verdict_rejects") == [(0,)]


@pytest.mark.slow
def test_review_verdicts_redropping_a_file_changes_nothing(inbox, load, query):
    body = HEADER + f"{rid(0)},good,,,ann\n{rid(1)},bad,tone,,ann\n"
    (inbox / "ann.csv").write_text(body)
    load()
    before = query("SELECT * FROM review_verdicts ORDER BY request_id")
    (inbox / "ann.csv").write_text(body)  # dropped again
    (inbox / "ann-copy.csv").write_text(body)  # and a copy under another name
    meta = load()
    assert query("SELECT * FROM review_verdicts ORDER BY request_id") == before  # loaded_at included
    assert (meta["new"], meta["changed"], meta["unchanged"]) == (0, 0, 4)


@pytest.mark.slow
def test_review_verdicts_changed_file_updates_the_verdict(inbox, load, query):
    path = inbox / "ann.csv"
    path.write_text(HEADER + f"{rid(0)},good,,,ann\n{rid(1)},bad,tone,,ann\n")
    load()
    path.write_text(HEADER + f"{rid(0)},bad,refusal,should have answered,ann\n{rid(1)},bad,tone,,ann\n")
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9,) * 2)
    meta = load()
    assert verdicts(query)[0] == (rid(0), "bad", "refusal", "should have answered", "ann", "chat-large")
    assert (meta["new"], meta["changed"], meta["unchanged"]) == (0, 1, 1)


@pytest.mark.slow
def test_review_verdicts_later_file_wins(inbox, load, query):
    first, second = inbox / "a.csv", inbox / "b.jsonl"
    first.write_text(HEADER + f"{rid(3)},good,,,ann\n")
    second.write_text(json.dumps({"request_id": rid(3), "verdict": "bad", "reviewer": "bob"}) + "\n")
    os.utime(first, ns=(10**18, 10**18))
    os.utime(second, ns=(2 * 10**18, 2 * 10**18))
    load()
    assert verdicts(query) == [(rid(3), "bad", None, None, "bob", "chat-large")]


@pytest.mark.slow
def test_review_verdicts_malformed_rows_are_rejected_and_good_rows_kept(inbox, load, query):
    (inbox / "mixed.csv").write_text(
        HEADER
        + f"{rid(0)},good,,,ann\n"  # row 1: fine
        + f"{rid(1)},bad,tone,x,ann,extra\n"  # row 2: a column too many
        + f"{rid(2)},meh,,,ann\n"  # row 3: not good/bad
        + "req-99-00000,good,,,ann\n"  # row 4: not in the sample
        + f"{rid(0)},bad,,,ann\n"  # row 5: duplicate of row 1
        + ",good,,,ann\n"  # row 6: no request_id
        + f"{rid(4)},bad,Not A Word!,,ann\n"  # row 7: category
        + f"{rid(5)},bad,tone,,ann\n"  # row 8: fine
    )
    (inbox / "lines.jsonl").write_text(
        json.dumps({"request_id": rid(6), "verdict": "good"})
        + "\n{not json\n\n[1, 2]\n"
        + json.dumps({"request_id": rid(8), "verdict": "bad"})
        + "\n"
    )
    (inbox / "headerless.csv").write_text(f"{rid(9)},good\n")
    meta = load()
    assert [r[0] for r in verdicts(query)] == [rid(0), rid(5), rid(6), rid(8)]
    rejects = query(
        "SELECT regexp_extract(source_file, '[^/]+$'), source_row, reason FROM review_verdict_rejects ORDER BY 1, 2"
    )
    assert [(f, r) for f, r, _ in rejects] == [
        ("headerless.csv", None),
        ("lines.jsonl", 2),
        ("lines.jsonl", 4),
        ("mixed.csv", 2),
        ("mixed.csv", 3),
        ("mixed.csv", 4),
        ("mixed.csv", 5),
        ("mixed.csv", 6),
        ("mixed.csv", 7),
    ]
    reasons = {(f, r): why for f, r, why in rejects}
    assert reasons[("mixed.csv", 2)].startswith("malformed CSV line 3")
    assert reasons[("mixed.csv", 3)] == "verdict must be good or bad, got 'meh'"
    assert reasons[("mixed.csv", 4)] == "request_id req-99-00000 is not in review_sample"
    assert reasons[("mixed.csv", 5)] == "duplicate request_id in this file (first at row 1)"
    assert reasons[("mixed.csv", 6)] == "missing request_id"
    assert reasons[("lines.jsonl", 2)] == "not valid JSON" and reasons[("lines.jsonl", 4)] == "not a JSON object"
    assert "missing column(s) request_id, verdict" in reasons[("headerless.csv", None)]
    assert meta["rejected"] == 9 and "mixed.csv | 3 | verdict must be good or bad" in meta["rejects"]
    load()  # re-running replaces the rejects of the same files, no duplicates
    assert query("SELECT count(*) FROM review_verdict_rejects") == [(9,)]


def test_review_inbox_sensor_requests_a_run_for_new_or_changed_files(inbox, instance, resources):
    def tick(cursor):
        ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        return review_inbox_sensor.evaluate_tick(ctx)

    empty = tick(None)
    assert empty.run_requests == [] and "No new or changed" in empty.skip_message
    path = inbox / "ann.csv"
    path.write_text(HEADER + f"{rid(0)},good,,,ann\n")
    new = tick(empty.cursor)
    assert len(new.run_requests) == 1
    quiet = tick(new.cursor)
    assert quiet.run_requests == []
    path.write_text(HEADER + f"{rid(0)},good,,,ann\n")  # rewritten, same content: not news
    assert tick(quiet.cursor).run_requests == []
    path.write_text(HEADER + f"{rid(0)},bad,,,ann\n")
    changed = tick(quiet.cursor)
    assert len(changed.run_requests) == 1 and json.loads(changed.cursor) != json.loads(quiet.cursor)
    (inbox / "nested").mkdir()
    (inbox / "nested" / "bob.jsonl").write_text("{}\n")
    (inbox / "notes.txt").write_text("ignored")
    assert len(tick(changed.cursor).run_requests) == 1


def test_review_inbox_sensor_targets_verdicts_and_quality():
    from monitoring_pipeline.definitions import defs

    sensor = defs.resolve_sensor_def("review_inbox_sensor")
    assert sensor.targets[0].job_name == "review_verdicts_job"  # a name people recognize in runs and alerts
    job = defs.resolve_job_def(sensor.targets[0].job_name)
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {
        "review_verdicts",
        "human_quality",
        "judge_agreement",  # the judge's calibration is recomputed whenever verdicts load
    }
