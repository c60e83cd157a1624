"""One hour's materialization in an OS process of its own, on its own Dagster instance, for the
tests where several processes meet at one DuckDB file.

The processes are forked from multiprocessing's fork server, which imports Dagster and the assets
once (per test worker): a fresh `python -c` paid 3-4 s of CPU for imports and instance setup before
each run, more than the run. A fork server is a clean process (no pytest, no DuckDB file or Dagster
instance open), so each child starts as a new interpreter would, only with the modules loaded:
nothing but DuckDB's file lock (and the warehouse's connect retry) stands between the processes."""

import multiprocessing
import os
import sys
from pathlib import Path

ASSET_MODULES = (
    "monitoring_pipeline.defs.ingest.assets",
    "monitoring_pipeline.defs.metrics.assets",
    "monitoring_pipeline.defs.review.sample",
)


def _materialize(db: str, logs: str, config: str, partition: str, timeout: float, out: str, err: str) -> None:
    for fd, path in ((1, out), (2, err)):  # like a child's stdout and stderr: what it prints, Dagster's logs
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    import dagster as dg

    from monitoring_pipeline.defs.ingest.assets import llm_requests
    from monitoring_pipeline.defs.metrics.assets import hourly_metrics
    from monitoring_pipeline.defs.review.sample import review_sample
    from monitoring_pipeline.resources import DuckDBWarehouse, LogSource, MonitoringSettings

    resources = {
        "warehouse": DuckDBWarehouse(database=db, connect_timeout_s=timeout),
        "logs": LogSource(log_dir=logs),
        "settings": MonitoringSettings(config_path=config),
    }
    # In memory: which storage records the run does not matter here, and a temporary SQLite one
    # costs a process a second or two to create.
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [llm_requests, hourly_metrics, review_sample],
            partition_key=partition,
            resources=resources,
            instance=instance,
            raise_on_error=False,
        )
    print("ok" if result.success else "failed", flush=True)
    sys.stderr.flush()
    sys.exit(0 if result.success else 1)


class HourProcess:
    """A started child; `communicate(timeout)` waits for it and returns (stdout, stderr), and sets
    `returncode`, as subprocess.Popen's do."""

    def __init__(self, process: multiprocessing.process.BaseProcess, out: Path, err: Path):
        self._process, self._out, self._err = process, out, err
        self.returncode: int | None = None

    def communicate(self, timeout: float) -> tuple[str, str]:
        self._process.join(timeout)
        if self._process.exitcode is None:
            self._process.kill()
            self._process.join()
            raise TimeoutError(f"the hour's process did not finish within {timeout} s")
        self.returncode = self._process.exitcode
        return self._out.read_text(), self._err.read_text()


def start(db: Path, logs: Path, config: Path, partition: str, timeout: float, folder: Path) -> HourProcess:
    """Materialize `partition` in a new process, its output in files under `folder`."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, "dagster", *ASSET_MODULES])  # only when the server starts
    out, err = (Path(folder) / f"hour-{os.urandom(4).hex()}.{name}" for name in ("out", "err"))
    process = context.Process(
        target=_materialize, args=(str(db), str(logs), str(config), partition, float(timeout), str(out), str(err))
    )
    process.start()
    return HourProcess(process, out, err)
