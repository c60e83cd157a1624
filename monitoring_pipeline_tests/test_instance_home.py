"""The repo's dagster.yaml works as DAGSTER_HOME from any working directory."""

import shutil
from pathlib import Path

import dagster as dg

REPO = Path(__file__).resolve().parents[1]


@dg.asset
def _probe() -> int:
    return 1


def test_instance_home_storage_lands_under_dagster_home_from_any_cwd(tmp_path, monkeypatch):
    home, elsewhere = tmp_path / "repo_copy", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.chdir(elsewhere)
    instance = dg.DagsterInstance.get()
    try:
        result = dg.materialize([_probe], instance=instance)
        assert instance.get_run_by_id(result.run_id) is not None
        pools = instance.get_concurrency_config().pool_config
        assert (pools.default_pool_limit, pools.pool_granularity.value) == (2, "run")  # the rest of the file applies
    finally:
        instance.dispose()
    assert (home / "history" / "runs.db").exists() and (home / "storage").is_dir()
    assert list(elsewhere.iterdir()) == []  # nothing written where the command happened to start
    again = dg.DagsterInstance.get()  # a later process, started in yet another folder, sees the run
    try:
        monkeypatch.chdir(tmp_path)
        assert again.get_run_by_id(result.run_id) is not None
    finally:
        again.dispose()
