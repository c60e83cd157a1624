"""Shared fixtures: temp DuckDB files and log folders, a real Dagster instance, a local Slack server."""

import fcntl
import functools
import gzip
import json
import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from monitoring_pipeline_tests.slack_server import SlackServer

# Dagster and the pipeline are imported where they are used, not here: xdist's controller loads
# this file too, before it starts the workers, and needs neither (3 s of every parallel run).

HOUR = datetime(2026, 3, 1, 10, tzinfo=timezone.utc)
PARTITION = "2026-03-01-10:00"
TOKEN = "xoxb-test-secret-token-123"


def record(i: int = 0, hour: datetime = HOUR, **overrides) -> dict:
    """A valid log record, i-th of its hour, with any field overridden (None deletes it)."""
    rec = {
        "request_id": f"req-{hour:%H}-{i:05d}",
        "timestamp": (hour + timedelta(seconds=i % 3600)).isoformat(),
        "model": "chat-large",
        "latency_ms": 500.0,
        "input_tokens": 100,
        "output_tokens": 50,
        "input_length": 400,
        "output_length": 200,
        "user_id": f"user-{i % 7}",
        "status": "ok",
        "error_type": None,
        "feedback": None,
        "safety_flags": [],
        "prompt": "hello",
        "response": "hi",
    }
    rec.update(overrides)
    return {k: v for k, v in rec.items() if v is not None or k in ("error_type", "feedback")}


class LogWriter:
    """Writes log files into Hive-style hour folders under `root`."""

    def __init__(self, root: Path):
        self.root = root

    def folder(self, hour: datetime = HOUR) -> Path:
        path = self.root / f"dt={hour:%Y-%m-%d}" / f"hour={hour:%H}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def records(self, records: list[dict], hour: datetime = HOUR, name: str = "app.jsonl") -> Path:
        return self.lines([json.dumps(r).encode() for r in records], hour, name)

    def lines(
        self, lines: list[bytes | str], hour: datetime = HOUR, name: str = "app.jsonl", trailing_newline: bool = True
    ) -> Path:
        data = b"\n".join(line.encode() if isinstance(line, str) else line for line in lines)
        if trailing_newline and lines:
            data += b"\n"
        path = self.folder(hour) / name
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        return path


@pytest.fixture
def logs(tmp_path) -> LogWriter:
    return LogWriter(tmp_path / "logs")


def config_writer(root: Path):
    """Writes `root`/config.yaml: the test layout's defaults (review files and dry-run alerts under
    `root`), with any overrides merged over them; `.path` is the file."""
    path = root / "config.yaml"
    base = {
        "review": {"output_dir": str(root / "review")},
        "alerts": {"dry_run_file": str(root / "alerts" / "dry_run.jsonl")},
    }

    def write(overrides: dict | None = None) -> Path:
        merged = dict(base)
        for key, value in (overrides or {}).items():
            merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
        path.write_text(yaml.safe_dump(merged))
        return path

    write.path = path
    write()
    return write


@pytest.fixture
def config_file(tmp_path):
    """Path of a config file; call it with overrides to write them (merged over the defaults)."""
    return config_writer(tmp_path)


ISOLATED_VARS = (
    "SLACK_BOT_TOKEN",
    "SLACK_API_URL",
    "MONITORING_CONFIG",
    "MONITORING_DUCKDB_PATH",
    "MONITORING_LOG_DIR",
    "MONITORING_ALERTS_DB",
    "MONITORING_REVIEW_SALT",
    "MONITORING_JUDGE_URL",
    "MONITORING_JUDGE_MODEL",
    "MONITORING_JUDGE_API_KEY",
)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
    """No test sees the developer's Slack token or pipeline paths."""
    for var in ISOLATED_VARS:
        monkeypatch.delenv(var, raising=False)


def folder_resources(root: Path) -> dict:
    """The pipeline's resources on the test layout under `root`: its DuckDB files, logs/ and config.yaml."""
    from monitoring_pipeline.defs.alerts.delivery import AlertDelivery
    from monitoring_pipeline.defs.review.judge_client import JudgeClient
    from monitoring_pipeline.resources import Clock, DuckDBWarehouse, LogSource, MonitoringSettings

    return {
        "warehouse": DuckDBWarehouse(database=str(root / "monitoring.duckdb")),
        "alert_state": DuckDBWarehouse(database=str(root / "alerts.duckdb")),
        "logs": LogSource(log_dir=str(root / "logs")),
        "settings": MonitoringSettings(config_path=str(root / "config.yaml")),
        "alert_delivery": AlertDelivery(timeout_s=2),
        "clock": Clock(fixed="2026-03-01T11:10:00+00:00"),
        "judge": JudgeClient(),  # off unless a test sets MONITORING_JUDGE_URL and MONITORING_JUDGE_MODEL
    }


@pytest.fixture
def resources(tmp_path, logs, config_file) -> dict:
    return folder_resources(tmp_path)


@pytest.fixture
def start_from(tmp_path_factory, tmp_path):
    """Start the test from a state built once per session and copied in, for tests that would each
    materialize the same hours before doing their own part.

    `start_from(name, build)`: the first call runs `build(root)` in a folder of its own (the same
    layout as a test's tmp_path: logs/, config.yaml, monitoring.duckdb, review/, ...), with the
    environment as isolated as a test's; every call copies that folder's files, except
    config.yaml, into tmp_path. xdist's workers share the folder (the first builds it, under a
    lock). Symlinks are copied as links (to the same targets). The copied tables are what the test
    would have built itself, except that paths in them (llm_requests.source_file) name the build
    folder's log files: ingest matches files by name, so a test may ingest those hours again, but
    rows it compares with a fresh build's will differ in those paths. The test's Dagster instance
    does not have the build's runs."""

    def start(name: str, build) -> None:
        shared = tmp_path_factory.getbasetemp()
        if os.environ.get("PYTEST_XDIST_WORKER"):
            shared = shared.parent  # the session's folder, above each worker's own
        root = shared / f"built-{name.replace(' ', '-')}"
        with open(shared / f"built-{name.replace(' ', '-')}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if not (root / BUILT).exists():
                shutil.rmtree(root, ignore_errors=True)  # a build that failed half way
                root.mkdir()
                with pytest.MonkeyPatch.context() as env:
                    for var in ISOLATED_VARS:
                        env.delenv(var, raising=False)
                    build(root)
                (root / BUILT).touch()
        shutil.copytree(
            root, tmp_path, symlinks=True, dirs_exist_ok=True, ignore=shutil.ignore_patterns("config.yaml", BUILT)
        )

    return start


BUILT = ".built"


@pytest.fixture(scope="session", autouse=True)
def _dagster_migration_scripts_read_once():
    """Every Dagster instance stamps its new SQLite storages with alembic, and alembic reads and
    executes all of Dagster's ~180 migration scripts to find "head" each time: 0.25 s of every test
    that makes an instance. The scripts do not change during a session, so each folder of them is
    read once. Nothing else about the storages changes (the same tables, the same stamp)."""
    from alembic.script import ScriptDirectory

    read = ScriptDirectory.from_config.__func__
    folders: dict[tuple, ScriptDirectory] = {}

    def from_config(cls, config):
        key = (config.get_alembic_option("script_location"), tuple(config.get_version_locations_list() or ()))
        if key not in folders:
            folders[key] = read(cls, config)
        return folders[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ScriptDirectory, "from_config", classmethod(from_config))
        yield


@pytest.fixture
def instance():
    """A real Dagster instance with in-memory storage: the same run, event and check records as
    SQLite, without creating a database per test (a second per test)."""
    import dagster as dg

    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


@functools.cache
def all_assets() -> list:
    """Every hourly asset (with the built-in evaluators' checks), as materialize() takes them."""
    from monitoring_pipeline.config import load_config
    from monitoring_pipeline.defs.evaluation.assets import evaluation_assets
    from monitoring_pipeline.defs.ingest.assets import llm_requests
    from monitoring_pipeline.defs.metrics.assets import hourly_metrics
    from monitoring_pipeline.defs.review.sample import review_sample

    return [llm_requests, hourly_metrics, evaluation_assets(load_config()), review_sample]


def __getattr__(name: str):
    """`from monitoring_pipeline_tests.conftest import ALL_ASSETS`: all_assets(), built on first use."""
    if name == "ALL_ASSETS":
        return all_assets()
    raise AttributeError(name)


@pytest.fixture
def run_hour(resources, instance):
    """Materialize every asset for one partition on the test instance; returns the result."""
    import dagster as dg

    def run(partition: str = PARTITION, assets=None, raise_on_error: bool = True):
        return dg.materialize(
            all_assets() if assets is None else assets,
            partition_key=partition,
            resources=resources,
            instance=instance,
            raise_on_error=raise_on_error,
        )

    return run


@functools.cache
def _reader():
    """One in-memory DuckDB per test process that test queries ATTACH files to: a new database
    instance (duckdb.connect) costs ~40 ms of CPU to set up DuckDB's catalog, an ATTACH ~4 ms."""
    import duckdb

    return duckdb.connect()


def read_rows(path, sql: str, params=None) -> list[tuple]:
    """Run SQL against the DuckDB file at `path`, read-only, as a read-only connect() would: the
    file is attached (taking DuckDB's lock) for the query alone, its tables by their plain names."""
    conn = _reader().cursor()  # a connection of its own: USE is per connection
    try:
        quoted = str(path).replace("'", "''")
        conn.execute(f"ATTACH '{quoted}' AS _read (READ_ONLY)")
        try:
            conn.execute("USE _read")
            return conn.execute(sql, params or []).fetchall()
        finally:
            conn.execute("USE memory")
            conn.execute("DETACH _read")
    finally:
        conn.close()


@pytest.fixture
def query(tmp_path):
    """Run SQL against the test warehouse (read-only) and return all rows."""

    def run(sql: str, params=None) -> list[tuple]:
        return read_rows(tmp_path / "monitoring.duckdb", sql, params)

    return run


@pytest.fixture
def slack(monkeypatch):
    """A local Slack-compatible server, with SLACK_BOT_TOKEN and SLACK_API_URL pointing at it."""
    server = SlackServer().start()
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SLACK_API_URL", server.url)
    yield server
    server.stop()


# The test that drives `dagster dev` (its daemon backfills, then Chromium reads two pages) spends
# most of its ~105 s waiting on the daemon's loops and runs: it goes first, on the first worker,
# while the other workers run everything else on the two cores.
DAEMON_CHAIN = ("test_webserver.py::test_dagster_dev_",)
# Then the slowest of the rest, slowest first (wall seconds in make test on the 2-core box, three
# workers; alone they take about a third less): started first, each runs beside the others and the
# quick tests instead of after them. Other slow tests follow, then the rest.
SLOWEST_FIRST = (
    "test_demo.py::",  # ~90: a ranged run, then the demo's 24 hourly runs in a process of its own
    "test_bench.py::",  # ~30
    "test_concurrency.py::",  # 6-13 each: processes that take turns at one DuckDB file
)


def pytest_collection_modifyitems(config, items):
    """The order above. xdist, with --maxschedchunk=1 (pyproject), starts each worker with two
    tests, the second queued behind the first, then hands out one at a time: the first worker
    starts with the daemon test, each other worker with one of the slowest and a quick test
    behind it, so no other slow test waits behind a slow one."""
    ranked = DAEMON_CHAIN + SLOWEST_FIRST

    def rank(item) -> int:
        found = [i for i, part in enumerate(ranked) if part in item.nodeid]
        if found:
            return found[0]
        return len(ranked) + (0 if item.get_closest_marker("slow") else 1)

    items.sort(key=rank)  # stable: file order within a rank
    chain = [item for item in items if rank(item) < len(DAEMON_CHAIN)]
    slowest = [item for item in items if len(DAEMON_CHAIN) <= rank(item) < len(ranked)]
    quick = [item for item in items if rank(item) > len(ranked)]
    starts = [chain] if len(chain) == 2 else [[item] for item in chain]
    starts += [[item] for item in slowest[:2]]  # demo, bench: the other workers' first tests
    head = []
    for start in starts:
        head += start if len(start) == 2 or not quick else [*start, quick.pop(0)]
    placed = {id(item) for item in head}
    items[:] = head + [item for item in items if id(item) not in placed]
