"""Hourly assets that backfill many hours per run.

A run's process costs seconds before any work (imports, resources, steps), and every event it
records costs milliseconds in the instance's storage, so a month backfilled one hour per run, or
one event per check per hour, spends most of its time on Dagster, not on the data.
`BACKFILL_POLICY` lets a backfill put up to `HOURS_PER_RUN` hours in one run, and two decorators
adapt an hourly asset's body to it:

- `per_run`: the body runs once per window of the run's hours (`Hours`): set-based SQL over the
  window (`hour >= $start AND hour < $end`, grouped by hour), then one `HourResults` per hour.
  A window is the whole run unless its hours hold more than `ROWS_PER_STATEMENT` calls (weighed
  before the body runs): a week of hours of a million calls each is worked a few hours at a time.
- `per_hour`: the body runs once per hour of the run, on one DuckDB connection, thinking in one
  hour (`context.partition_time_window` is the hour's); for work that is per hour by nature.

What a run records:
- a single-hour run (the schedule, the late-logs sensor, `dg.materialize(..., partition_key=...)`)
  records exactly what the body returns for its hour: its MaterializeResult(s) and their checks;
- a range run (a backfill) records one materialization per asset and hour, carrying that hour's
  own metadata (so the UI's per-partition metadata and plots show each hour's figures) and
  `hours_in_run`; and per check, the evaluations that say how its state went over the range: the
  first and the last hour, every hour it failed, and the hour after a failure (the recovery), each
  carrying its hour. Between two recorded hours the check passed, unrecorded: over a month of
  healthy history that is one evaluation per check per run instead of one per hour, and the
  incidents and the backfill's summary still open and resolve at their own hours.

Converting an hourly asset (the body unchanged with per_hour):

    @dg.multi_asset(specs=[...], partitions_def=hourly_partitions, can_subset=True,
                    check_specs=[...], backfill_policy=hourly.BACKFILL_POLICY)
    @hourly.per_hour
    def my_asset(context, warehouse, ...):
        hour = context.partition_time_window.start.replace(tzinfo=None)  # one hour, always
        ...

An asset with `check_specs` must be a `@dg.multi_asset(..., can_subset=True)`: a plain `@dg.asset`
requires an AssetCheckResult per check, which a range run does not give (it records evaluations).
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import dagster as dg

from monitoring_pipeline.lib.db import table_exists


def _hours_per_run() -> int:
    value = os.environ.get("MONITORING_BACKFILL_HOURS_PER_RUN", "168")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"MONITORING_BACKFILL_HOURS_PER_RUN={value!r}: expected a whole number of hours >= 1")
    return int(value)


# A week by default: a run's process start and its hand-offs cost seconds, an hour of a few hundred
# calls milliseconds. Statements stay bounded by ROWS_PER_STATEMENT whatever the run's length; the
# run's length is bounded by run_monitoring's max runtime (an hour): at ~1M calls an hour, use 24.
HOURS_PER_RUN = _hours_per_run()
# The calls one set-based statement covers at most, over the hours of a window.
ROWS_PER_STATEMENT = 2_000_000
BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=HOURS_PER_RUN)

Result = dg.MaterializeResult | dg.AssetCheckResult


@dataclass(frozen=True)
class Hours:
    """The hours of a run, in order: one for a single-hour run, a range for a backfill's run.
    Timestamps are naive UTC, as stored in the warehouse."""

    keys: list[str]
    starts: list[datetime]

    @property
    def start(self) -> datetime:
        return self.starts[0]

    @property
    def end(self) -> datetime:
        """The end of the last hour (exclusive)."""
        return self.starts[-1] + timedelta(hours=1)

    @property
    def window(self) -> dict[str, datetime]:
        """SQL parameters: `hour >= $start AND hour < $end`."""
        return {"start": self.start, "end": self.end}

    def __iter__(self) -> Iterator[tuple[str, datetime]]:
        return iter(zip(self.keys, self.starts, strict=True))

    def __len__(self) -> int:
        return len(self.keys)

    def windows(self, rows: dict[datetime, int], cap: int) -> list[Hours]:
        """Consecutive runs of these hours, each holding at most `cap` rows (an hour over the cap
        alone), by the rows each hour holds (hours not in `rows` weigh nothing)."""
        windows, first, total = [], 0, 0
        for i, start in enumerate(self.starts):
            if i > first and total + rows.get(start, 0) > cap:
                windows.append(Hours(self.keys[first:i], self.starts[first:i]))
                first, total = i, 0
            total += rows.get(start, 0)
        windows.append(Hours(self.keys[first:], self.starts[first:]))
        return windows


class HourResults(NamedTuple):
    """What one hour of a run yields: its MaterializeResult(s) (with their check_results) and any
    AssetCheckResult(s)."""

    key: str
    results: list[Result]


def run_hours(context: dg.AssetExecutionContext) -> Hours:
    partitions_def = context.assets_def.partitions_def
    assert isinstance(partitions_def, dg.TimeWindowPartitionsDefinition)
    keys = [context.partition_key] if context.has_partition_key else list(context.partition_keys)
    starts = [partitions_def.time_window_for_partition_key(k).start.replace(tzinfo=None) for k in keys]
    return Hours(keys, starts)


Weigh = Callable[..., dict[datetime, int]]


def requests_per_hour(hours: Hours, warehouse: Any = None, **_: Any) -> dict[datetime, int]:
    """Rows of llm_requests per hour: what every asset downstream of ingest reads."""
    if warehouse is None:
        return {}
    with warehouse.get_connection() as conn:
        if not table_exists(conn, "llm_requests"):
            return {}
        query = "SELECT hour, count(*) FROM llm_requests WHERE hour >= $start AND hour < $end GROUP BY hour"
        return dict(conn.execute(query, hours.window).fetchall())


def per_run(fn: Callable[..., Iterable[HourResults]] | None = None, *, weigh: Weigh = requests_per_hour) -> Any:
    """Run an hourly asset's body once per window of its run's hours (see the module docstring):
    `fn(context, hours, **resources)` yields one HourResults per hour. `weigh(hours, **resources)`
    gives the rows per hour that decide the windows of a range run."""

    def decorate(fn: Callable[..., Iterable[HourResults]]) -> Callable[..., Iterator[Any]]:
        @functools.wraps(fn)
        def wrapper(context: dg.AssetExecutionContext, *args: Any, **kwargs: Any) -> Iterator[Any]:
            hours = run_hours(context)
            windows = hours.windows(weigh(hours, **kwargs), ROWS_PER_STATEMENT) if len(hours) > 1 else [hours]
            if len(windows) > 1:
                context.log.info(f"{len(hours)} hours in {len(windows)} windows of at most {ROWS_PER_STATEMENT:,} rows")
            results = (hour for window in windows for hour in fn(context, window, *args, **kwargs))
            yield from _record(context, hours, results)

        # Dagster reads the asset's inputs and resources from the signature: `hours` is neither.
        signature = inspect.signature(fn)
        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[p for name, p in signature.parameters.items() if name != "hours"]
        )
        return wrapper

    return decorate if fn is None else decorate(fn)


def per_hour(fn: Callable[..., Any]) -> Callable[..., Iterator[Any]]:
    """Run an hourly asset's body once per hour of the run (see the module docstring)."""

    @functools.wraps(fn)
    def wrapper(context: dg.AssetExecutionContext, *args: Any, **kwargs: Any) -> Iterator[Any]:
        hours = run_hours(context)
        if context.has_partition_key:
            yield from _record(context, hours, [HourResults(hours.keys[0], _results(fn(context, *args, **kwargs)))])
            return
        partitions_def = context.assets_def.partitions_def
        assert isinstance(partitions_def, dg.TimeWindowPartitionsDefinition)
        with ExitStack() as stack:
            shared = {**kwargs, **_shared_warehouses(stack, kwargs)}

            def each_hour() -> Iterator[HourResults]:
                for key in hours.keys:
                    hour = _OneHour(context, key, partitions_def.time_window_for_partition_key(key))
                    yield HourResults(key, _results(fn(hour, *args, **shared)))

            yield from _record(context, hours, each_hour())

    return wrapper


def _record(context: dg.AssetExecutionContext, hours: Hours, per_hour: Iterable[HourResults]) -> Iterator[Any]:
    """What the run records (see the module docstring)."""
    if context.has_partition_key:
        for hour in per_hour:
            yield from _selected(context, hour.results)
        return
    checks: dict[dg.AssetCheckKey, list[tuple[str, dg.AssetCheckResult]]] = {}
    for hour in per_hour:
        for result in _selected(context, hour.results):
            if isinstance(result, dg.AssetCheckResult):
                checks.setdefault(_check_key(context, result), []).append((hour.key, result))
                continue
            context.add_asset_metadata(
                result.metadata or {}, asset_key=_asset_key(context, result), partition_key=hour.key
            )
            for check_result in result.check_results or ():
                if _check_key(context, check_result) in context.selected_asset_check_keys:
                    checks.setdefault(_check_key(context, check_result), []).append((hour.key, check_result))
    context.log.info(f"{len(hours)} hours in this run: {hours.keys[0]} to {hours.keys[-1]}")
    for asset_key in sorted(context.selected_asset_keys, key=lambda k: k.to_user_string()):
        yield dg.MaterializeResult(asset_key=asset_key, metadata={"hours_in_run": len(hours)})
    for check, history in sorted(checks.items(), key=lambda item: item[0].to_user_string()):
        for key, evaluated in state_changes(history):
            yield _evaluation(check, evaluated, key)


def state_changes(history: list[tuple[str, dg.AssetCheckResult]]) -> Iterator[tuple[str, dg.AssetCheckResult]]:
    """The evaluations of a check over a range worth recording: the first and last hour, every
    hour it failed, and each hour after a failure (the recovery). Unrecorded hours passed."""
    last = len(history) - 1
    for i, (key, result) in enumerate(history):
        if i in (0, last) or not result.passed or not history[i - 1][1].passed:
            yield key, result


class _OneHour:
    """The run's context, seen from one hour of a range run: partition_key, partition_keys,
    partition_time_window and partition_key_range are that hour's; everything else is the run's."""

    def __init__(self, context: dg.AssetExecutionContext, key: str, window: dg.TimeWindow):
        self._context = context
        self.partition_key = key
        self.partition_keys = [key]
        self.partition_time_window = window
        self.partition_key_range = dg.PartitionKeyRange(key, key)
        self.has_partition_key = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class _SharedConnection:
    """A warehouse whose get_connection() hands out one connection for all the hours of a range
    run: opening and closing (a checkpoint) the DuckDB file per hour cost more than an hour's work."""

    def __init__(self, warehouse: Any, stack: ExitStack):
        self._warehouse = warehouse
        self._stack = stack
        self._conn: Any = None

    @contextmanager
    def get_connection(self) -> Iterator[Any]:
        if self._conn is None:
            self._conn = self._stack.enter_context(self._warehouse.get_connection())
        yield self._conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._warehouse, name)


def _shared_warehouses(stack: ExitStack, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The body's DuckDB warehouses, each kept open across the run's hours."""
    from monitoring_pipeline.resources import DuckDBWarehouse

    return {k: _SharedConnection(v, stack) for k, v in kwargs.items() if isinstance(v, DuckDBWarehouse)}


def _results(returned: Any) -> list[Result]:
    if returned is None:
        return []
    if isinstance(returned, (dg.MaterializeResult, dg.AssetCheckResult)):
        return [returned]
    return list(returned)


def _selected(context: dg.AssetExecutionContext, results: Iterable[Result]) -> Iterator[Result]:
    """Leave out what the run did not select (a subset of a multi-asset's assets or checks)."""
    for result in results:
        if isinstance(result, dg.AssetCheckResult):
            if _check_key(context, result) in context.selected_asset_check_keys:
                yield result
        elif _asset_key(context, result) in context.selected_asset_keys:
            yield result


def _asset_key(context: dg.AssetExecutionContext, result: dg.MaterializeResult) -> dg.AssetKey:
    return result.asset_key or context.assets_def.key


def _check_key(context: dg.AssetExecutionContext, result: dg.AssetCheckResult) -> dg.AssetCheckKey:
    """The check a result is for; a result may leave out the asset, or the name of an asset's only check."""
    (key,) = (
        k
        for k in context.assets_def.check_keys
        if result.check_name in (None, k.name) and result.asset_key in (None, k.asset_key)
    )
    return key


def _evaluation(check: dg.AssetCheckKey, result: dg.AssetCheckResult, key: str) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=check.asset_key,
        check_name=check.name,
        passed=result.passed,
        metadata=result.metadata,
        severity=result.severity,
        description=result.description,
        partition=key,
    )
