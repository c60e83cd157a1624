"""What the UI's lineage shows: llm_logs -> llm_requests + quarantine, both made by one step."""

import dagster as dg

from monitoring_pipeline.definitions import defs
from monitoring_pipeline.defs.ingest.assets import llm_requests
from monitoring_pipeline_tests.conftest import record


def test_lineage_logs_feed_requests_and_quarantine():
    graph = defs.resolve_asset_graph()
    logs, requests, quarantine = dg.AssetKey("llm_logs"), dg.AssetKey("llm_requests"), dg.AssetKey("quarantine")
    assert graph.get(requests).parent_keys == {logs}
    assert graph.get(quarantine).parent_keys == {logs}
    assert not graph.get(logs).is_materializable  # the app writes the files, not Dagster
    assert graph.get(quarantine).group_name == graph.get(requests).group_name == "ingest"
    job = defs.resolve_job_def("hourly_monitoring")
    assert {requests, quarantine} <= job.asset_layer.executable_asset_keys
    assert logs not in job.asset_layer.executable_asset_keys
    assert ("llm_requests", "quarantine_rate") in {
        (k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys
    }


def test_lineage_run_materializes_quarantine_with_its_reasons(logs, run_hour):
    logs.records([record(i) for i in range(96)])
    logs.lines(["{not json", "", '{"request_id": "x"}', "[1]"], name="bad.jsonl")
    result = run_hour(assets=[llm_requests])
    mats = {m.asset_key.to_user_string(): m.metadata for m in result.asset_materializations_for_node("llm_requests")}
    assert set(mats) == {"llm_requests", "quarantine"}
    meta = mats["quarantine"]
    assert meta["rows"].value == 4
    assert meta["share_of_lines"].value == 0.04
    assert meta["reason/malformed_json"].value == 1
    assert meta["reason/empty_line"].value == 1
    assert meta["reason/not_a_json_object"].value == 1
    assert meta["reason/missing_field:timestamp"].value == 1
    table = meta["reasons"].value
    assert "| malformed_json | 1 | 1.00% |" in table and "| reason | rows | share of lines |" in table
    assert mats["llm_requests"]["rows_ingested"].value == 96
