"""Hourly assets that backfill many hours per run.

A run's process costs seconds before any work (imports, resources, event writes per step), so a
month backfilled one hour per run spends most of its time starting runs. `BACKFILL_POLICY` lets a
backfill put up to a day of hours in one run, and `per_hour` runs the asset's body once per hour of
that run, so the body keeps thinking in one hour and writes one hour at a time (delete the hour's
window, insert, in one transaction), exactly as in a single-hour run.

What a run records:
- a single-hour run (the schedule, the late-logs sensor, `dg.materialize(..., partition_key=...)`)
  yields exactly what the body returns: its MaterializeResult(s) and AssetCheckResult(s);
- a range run (a backfill) yields, per hour, an `AssetCheckEvaluation` carrying that hour's
  partition (so check history, incidents and alerts stay per hour), then one MaterializeResult per
  asset with `hours_in_run` (the run's output, so downstream steps of the same run go ahead; Dagster
  records it for every hour of the range), then per hour an `AssetMaterialization` with the hour's
  own metadata. That last one is each hour's latest materialization, so the UI's per-partition
  metadata and plots show the hour's figures, as after a single-hour run.

Converting an hourly asset (one line each, the body unchanged):

    @dg.asset(partitions_def=hourly_partitions, ..., backfill_policy=hourly.BACKFILL_POLICY)
    @hourly.per_hour
    def my_asset(context, warehouse, ...):
        hour = context.partition_time_window.start.replace(tzinfo=None)  # one hour, always
        ...

An asset with `check_specs` must be a `@dg.multi_asset(specs=[dg.AssetSpec(...)], can_subset=True,
...)`: a plain `@dg.asset` requires an AssetCheckResult per check, which a range run cannot give
per hour (it would record one evaluation with no partition).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import dagster as dg

HOURS_PER_RUN = 24
BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=HOURS_PER_RUN)


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


def per_hour(fn: Callable[..., Any]) -> Callable[..., Iterator[Any]]:
    """Run an hourly asset's body once per hour of the run (see the module docstring)."""

    @functools.wraps(fn)
    def wrapper(context: dg.AssetExecutionContext, *args: Any, **kwargs: Any) -> Iterator[Any]:
        if context.has_partition_key:
            yield from _selected(context, _results(fn(context, *args, **kwargs)))
            return
        partitions_def = context.assets_def.partitions_def
        assert isinstance(partitions_def, dg.TimeWindowPartitionsDefinition)
        keys = context.partition_keys
        materializations: list[dg.AssetMaterialization] = []
        with ExitStack() as stack:
            shared = {**kwargs, **_shared_warehouses(stack, kwargs)}
            for key in keys:
                hour = _OneHour(context, key, partitions_def.time_window_for_partition_key(key))
                results = list(_selected(context, _results(fn(hour, *args, **shared))))
                yield from _per_hour_events(context, results, key, materializations)
        context.log.info(f"{len(keys)} hours in this run: {keys[0]} to {keys[-1]}")
        for asset_key in sorted(context.selected_asset_keys, key=lambda k: k.to_user_string()):
            yield dg.MaterializeResult(asset_key=asset_key, metadata={"hours_in_run": len(keys)})
        yield from materializations

    return wrapper


def _per_hour_events(
    context: dg.AssetExecutionContext, results: list[Any], key: str, materializations: list[dg.AssetMaterialization]
) -> Iterator[dg.AssetCheckEvaluation]:
    """The hour's check evaluations; its materializations go to `materializations` for later."""
    for result in results:
        if isinstance(result, dg.AssetCheckResult):
            yield _evaluation(context, result, key)
            continue
        asset_key = _asset_key(context, result)
        materializations.append(dg.AssetMaterialization(asset_key, partition=key, metadata=result.metadata))
        for check in result.check_results or ():
            if _check_key(context, check) in context.selected_asset_check_keys:
                yield _evaluation(context, check, key)


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


def _results(returned: Any) -> Iterable[Any]:
    if returned is None:
        return ()
    if isinstance(returned, (dg.MaterializeResult, dg.AssetCheckResult)):
        return (returned,)
    return returned


def _selected(context: dg.AssetExecutionContext, results: Iterable[Any]) -> Iterator[Any]:
    """Leave out what the run did not select (a subset of a multi-asset's assets or checks)."""
    for result in results:
        if isinstance(result, dg.AssetCheckResult):
            if _check_key(context, result) in context.selected_asset_check_keys:
                yield result
        elif isinstance(result, dg.MaterializeResult):
            if _asset_key(context, result) in context.selected_asset_keys:
                yield result
        else:
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


def _evaluation(context: dg.AssetExecutionContext, result: dg.AssetCheckResult, key: str) -> dg.AssetCheckEvaluation:
    check = _check_key(context, result)
    return dg.AssetCheckEvaluation(
        asset_key=check.asset_key,
        check_name=check.name,
        passed=result.passed,
        metadata=result.metadata,
        severity=result.severity,
        description=result.description,
        partition=key,
    )
