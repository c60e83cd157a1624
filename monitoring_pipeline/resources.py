"""Resources: the DuckDB warehouse, the log folder, and the configuration file."""

import fcntl
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from stat import S_ISREG
from typing import Any

import dagster as dg
import duckdb

from monitoring_pipeline.config import MonitoringConfig, get_config, naive_utc

LOG_PATTERNS = ("*.jsonl", "*.jsonl.gz")
MEMORY = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)")
# DuckDB's answer when another process holds the file (the only error worth waiting out):
#   IO Error: Could not set lock on file "<path>": Conflicting lock is held in <program> (PID n)
LOCK_CONFLICT = re.compile(r'IO Error: Could not set lock on file ".*": Conflicting lock is held', re.S)


class DuckDBWarehouse(dg.ConfigurableResource):
    """One DuckDB file. DuckDB allows one writing process per file, so the processes of this
    project take turns on it: `get_connection` first takes the file's turn (an exclusive lock on
    `<file>.lock`, waited for in line for up to `turn_timeout_s`), then connects, retrying with
    backoff for `connect_timeout_s` while a process outside the turns (a `duckdb` shell) holds the
    file. The connection is closed and the turn passed on on every path, so a failed asset never
    leaves the file locked, and a process that dies releases its turn with it."""

    database: str = ""  # empty: $<env_var>, else default_database
    env_var: str = "MONITORING_DUCKDB_PATH"
    default_database: str = "data/monitoring.duckdb"
    connect_timeout_s: float = 120.0
    # Another run's turn lasts as long as its statements: at millions of calls an hour, minutes.
    # An hour is as long as a run may take at all (run_monitoring in dagster.yaml).
    turn_timeout_s: float = 3600.0
    # DuckDB spills to a temp folder beside the file beyond this, so an hour of a million requests
    # (0.9 GB of logs) ingests in about 1.5 GB of RAM instead of DuckDB's default 80 % of the machine.
    memory_limit: str = "1GB"

    @property
    def path(self) -> str:
        return self.database or os.environ.get(self.env_var) or self.default_database

    @property
    def is_local_file(self) -> bool:
        return self.path != ":memory:" and ":" not in self.path.split("/", 1)[0]  # not md:, s3://

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self.is_local_file:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        if self.memory_limit and not MEMORY.fullmatch(self.memory_limit):
            raise ValueError(f"memory_limit {self.memory_limit!r}: expected a size such as '1GB'")
        settings: dict[str, str | bool | int | float | list[str]] = (
            {"memory_limit": self.memory_limit} if self.memory_limit else {}
        )
        with self._turn():
            deadline = time.monotonic() + self.connect_timeout_s
            delay = 0.05
            while True:
                try:
                    conn = duckdb.connect(self.path, config=settings)
                    break
                except duckdb.IOException as err:
                    # Only another process's lock is waited out; a bad file, a folder or a full disk fail now.
                    if not LOCK_CONFLICT.match(str(err)) or time.monotonic() > deadline:
                        raise
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
            try:
                # Timestamps are stored and compared in UTC. Not a connect() setting: DuckDB refuses
                # TimeZone there ("the icu extension needs to be loaded", duckdb/duckdb#11404, still so in 2.0).
                conn.execute("SET TimeZone = 'UTC'")
                yield conn
            finally:
                conn.close()

    @contextmanager
    def _turn(self) -> Iterator[None]:
        """Hold the file's turn. Nested and concurrent uses within a process share one turn (threads
        take it in turn, a nested get_connection does not wait for itself)."""
        if not self.is_local_file:
            yield
            return
        turn = _Turn.of(os.path.realpath(self.path) + ".lock")
        with turn.held(self.turn_timeout_s):
            yield


class _Turn:
    """An exclusive flock on a lock file, re-entrant within a thread, shared by a process's threads
    in turn. The file names its holder (pid, since when) for whoever waits."""

    def __init__(self, path: str):
        self.path = path
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._file: Any = None

    @classmethod
    def of(cls, path: str) -> "_Turn":
        with _TURNS_LOCK:
            return _TURNS.setdefault(path, cls(path))

    @contextmanager
    def held(self, timeout_s: float) -> Iterator[None]:
        if not self._thread_lock.acquire(timeout=timeout_s):
            raise TimeoutError(f"waited {timeout_s:.0f} s for {self.path} within this process")
        try:
            if self._depth == 0:
                self._file = self._take(timeout_s)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._file.close()  # closing the file releases the flock
                    self._file = None
        finally:
            self._thread_lock.release()

    def _take(self, timeout_s: float) -> Any:
        file = open(self.path, "a+")  # noqa: SIM115 -- held open for the turn, closed by held()
        started = time.monotonic()
        delay, next_note = 0.005, started + 30
        while True:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited > timeout_s:
                    file.close()
                    raise TimeoutError(
                        f"waited {waited:.0f} s for the turn on {self.path[: -len('.lock')]}: {self._holder()}"
                    ) from None
                if time.monotonic() > next_note:
                    dg.get_dagster_logger().info(f"waiting {waited:.0f} s for {self.path}: {self._holder()}")
                    next_note += 30
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
        file.seek(0)
        file.truncate()
        file.write(f"held by pid {os.getpid()} since {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC\n")
        file.flush()
        return file

    def _holder(self) -> str:
        try:
            return Path(self.path).read_text().strip() or "holder unknown"
        except OSError:
            return "holder unknown"


_TURNS: dict[str, _Turn] = {}
_TURNS_LOCK = threading.Lock()


class LogSource(dg.ConfigurableResource):
    """The app's log folder: Hive-style hourly folders dt=YYYY-MM-DD/hour=HH/ of *.jsonl(.gz).
    The root may be a URL DuckDB reads (s3://bucket/prefix, gs://..., az://...): files are then
    listed with DuckDB's glob() through its httpfs extension, and ingest reads them unchanged."""

    log_dir: str = ""  # empty: $MONITORING_LOG_DIR, else data/logs

    @property
    def location(self) -> str:
        return (self.log_dir or os.environ.get("MONITORING_LOG_DIR") or "data/logs").rstrip("/")

    @property
    def is_remote(self) -> bool:
        return "://" in self.location

    @property
    def root(self) -> Path:
        """The local folder (for remote roots there is none)."""
        if self.is_remote:
            raise ValueError(f"{self.location} is remote: no local folder")
        return Path(self.location)

    def hour_dir(self, hour: datetime) -> str:
        return f"{self.location}/dt={hour:%Y-%m-%d}/hour={hour:%H}"

    def hour_globs(self, hour: datetime) -> list[str]:
        return [f"{self.hour_dir(hour)}/{pattern}" for pattern in LOG_PATTERNS]

    def files_for_hour(self, hour: datetime) -> list[str]:
        if self.is_remote:
            return duckdb_glob(self.hour_globs(hour))
        folder = Path(self.hour_dir(hour))
        return sorted(str(p) for pattern in LOG_PATTERNS for p in folder.glob(pattern) if p.is_file())

    def list_hour(self, hour: datetime) -> "HourFiles":
        """The hour's files as a run reads them: stat'ed (and fingerprinted) before anything reads
        them, so a file that appears or grows after this moment changes the folder's fingerprint
        and late_logs_sensor re-runs the hour. A file that resolves outside the log folder (a
        symlink to /etc/passwd, say) is refused, never opened."""
        if self.is_remote:
            return HourFiles(files=duckdb_glob(self.hour_globs(hour)))
        listed = folder_files(Path(self.hour_dir(hour)))
        root = self.root.resolve()
        files, refused = [], []
        for path, _ in listed:
            if path.resolve().is_relative_to(root):
                files.append(str(path))
            else:
                refused.append((str(path), OUTSIDE_LOG_FOLDER))
        return HourFiles(files=files, refused=refused, fingerprint=fingerprint(listed))


OUTSIDE_LOG_FOLDER = "symlink outside the log folder"


@dataclass(frozen=True)
class HourFiles:
    """An hour folder's log files as listed at one moment."""

    files: list[str]  # to read
    refused: list[tuple[str, str]] = field(default_factory=list)  # (path, why): never read
    fingerprint: str | None = None  # of the files listed; None for an object store

    @property
    def names(self) -> list[str]:
        return [path.rsplit("/", 1)[-1] for path in [*self.files, *(p for p, _ in self.refused)]]


def folder_files(folder: Path) -> list[tuple[Path, os.stat_result]]:
    """The log files in an hour folder, sorted, with their stat (a file removed meanwhile is left out)."""
    listed = []
    for path in sorted(p for pattern in LOG_PATTERNS for p in folder.glob(pattern)):
        try:
            info = path.stat()  # follows symlinks, like the reader would
        except OSError:  # removed since the glob, or a dangling symlink
            continue
        if S_ISREG(info.st_mode):
            listed.append((path, info))
    return listed


def fingerprint(listed: list[tuple[Path, os.stat_result]]) -> str:
    """A digest of (name, size, mtime) of a folder's files: a file that appears, grows, is
    rewritten or removed changes it. Ingest records it; late_logs_sensor compares against it."""
    stats = [(p.name, s.st_size, s.st_mtime_ns) for p, s in listed]
    return hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:16]


def duckdb_glob(patterns: list[str]) -> list[str]:
    """Files matching the patterns, as DuckDB lists them (object stores included: httpfs is
    autoloaded for s3://, gs://, https://; credentials come from DuckDB secrets or the usual
    AWS_* variables)."""
    with duckdb.connect() as conn:
        return sorted({f for p in patterns for (f,) in conn.execute("SELECT file FROM glob($p)", {"p": p}).fetchall()})


class MonitoringSettings(dg.ConfigurableResource):
    """Thresholds, prices, budgets, channels and sample rate from the YAML file at `config_path`
    (empty: the shipped default)."""

    config_path: str = ""

    def load(self) -> MonitoringConfig:
        return get_config(self.config_path or None)


class Clock(dg.ConfigurableResource):
    """The time the alert sensors act on, as naive UTC. Tests pin it (`fixed`, ISO 8601) to script
    hours of alerting without sleeping."""

    fixed: str = ""

    def now(self) -> datetime:
        if self.fixed:
            return naive_utc(datetime.fromisoformat(self.fixed))
        return datetime.now(timezone.utc).replace(tzinfo=None)


def build_resources() -> dict:
    """Every resource the definitions bind, by key. Paths come from MONITORING_* variables, read
    when a resource is used, not at import; the on-call commands use the same ones."""
    from monitoring_pipeline.defs.alerts.delivery import AlertDelivery
    from monitoring_pipeline.defs.review.judge_client import JudgeClient

    return {
        "warehouse": DuckDBWarehouse(),
        "alert_state": DuckDBWarehouse(env_var="MONITORING_ALERTS_DB", default_database="data/alerts.duckdb"),
        "logs": LogSource(),
        "settings": MonitoringSettings(),
        "alert_delivery": AlertDelivery(),
        "clock": Clock(),
        "judge": JudgeClient(),
    }
