"""The code location loads, and every public name the issues pin resolves."""

import re
from pathlib import Path

import dagster as dg

from monitoring_pipeline.definitions import defs


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)


def test_definitions_public_names_resolve():
    assert defs.resolve_job_def("hourly_monitoring").partitions_def is not None
    assert defs.resolve_schedule_def("hourly_monitoring_schedule").job_name == "hourly_monitoring"
    assert defs.resolve_sensor_def("slack_alert_sensor")
    assert defs.resolve_sensor_def("missing_logs_sensor")
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"llm_requests", "hourly_metrics", "hourly_model_metrics", "review_sample"} <= keys
    assert {"review_verdicts", "human_quality"} <= keys
    assert defs.resolve_sensor_def("review_inbox_sensor")
    assert ("human_quality", "human_bad_rate") in {
        (k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys
    }
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert {
        ("hourly_metrics", name)
        for name in ("latency_p99", "latency_avg", "error_rate", "token_budget", "feedback_score", "safety_violations")
    } <= checks
    assert ("llm_requests", "quarantine_rate") in checks
    assert {("judge_verdicts", "judge_bad_rate"), ("judge_agreement", "judge_human_agreement")} <= checks


def test_readme_log_contract_matches_the_schema():
    """The README's field table is the contract users read: it must list what ingest enforces."""
    from pathlib import Path

    from monitoring_pipeline.contract import FIELDS

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for field in FIELDS:
        row = f"| `{field.name}` | {field.kind} | {'yes' if field.required else 'no'} | {field.description} |"
        assert row in readme, row


def test_definitions_evaluation_assets_and_checks_run_hourly():
    graph = defs.resolve_asset_graph()
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert {
        ("hourly_evaluations", name)
        for name in (
            "refusal_rate",
            "empty_response_rate",
            "truncation_rate",
            "invalid_json_rate",
            "prompt_injection_rate",
            "pii_leak",
        )
    } <= checks
    job = defs.resolve_job_def("hourly_monitoring")
    in_job = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert {"evaluation_flags", "hourly_evaluations", "review_sample"} <= in_job
    review = graph.get(dg.AssetKey("review_sample"))
    assert dg.AssetKey("evaluation_flags") in review.parent_keys  # the sample reads the flags


def test_readme_map_names_every_domain_folder_and_no_other():
    """The README's 'Where things live' map and the tree agree, folder for folder."""
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    section = readme.split("## Where things live", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^  (defs/\w+|lib|tools)/", section, flags=re.M))
    package = root / "monitoring_pipeline"
    on_disk = {f"defs/{p.name}" for p in (package / "defs").iterdir() if p.is_dir() and p.name != "__pycache__"}
    on_disk |= {"lib", "tools"}
    assert listed == on_disk
