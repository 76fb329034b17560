"""Everything measured on one database, in an order that keeps parts independent.

Operations, concurrency, wake-up and memory run on the base tables (1,000 rows
each); the scale part then grows the same tables to the large size and
re-measures the list/count/cleanup operations, so nothing else sees them big.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from typing import TYPE_CHECKING, Any

from bench.capture import Replayer
from bench.explain import explain
from bench.runner import OpResult, run_op
from bench.runner import interleaved as run_interleaved
from bench.suite_approvals import ApprovalSuite
from bench.suite_sessions import SessionSuite
from bench.targets import Target, open_replayers, sqlite_target
from dataflow import DataFlow

if TYPE_CHECKING:
    from bench.cli import Options

__all__ = ["bench_database"]

Suite = ApprovalSuite | SessionSuite
#: Approval operations timed again interleaved, for the vote targets (see ``goals``).
VOTE_OPS = ("approve", "quorum_vote", "delegated_vote")
#: The writes whose commits the ``sync`` part measures with ``synchronous=normal``.
SYNC_OPS = {
    "approvals": ("save", "update", "approve"),
    "sessions": ("save", "update_session_state"),
}


def _log(message: str) -> None:
    from bench.cli import log

    log(message)


def _selected(opts: Options, name: str) -> bool:
    return not opts.ops or any(o in name for o in opts.ops)


def _line(target: Target, r: OpResult) -> str:
    if r.error or r.ours is None:
        return f"{target.name:10} {r.group:9} {r.name:30} ERROR {r.error}"
    parts = [f"ours p50 {r.ours.p50:8.3f} ms"]
    for d, s in r.raw.items():
        parts.append(f"{d} {s.p50:8.3f} ms ({r.ratios().get(d, float('nan')):.2f}x)")
    extra = f"  [{r.mismatches} replay mismatches]" if r.mismatches else ""
    return f"{target.name:10} {r.group:9} {r.name:30} " + "  ".join(parts) + extra


async def _measure(
    db: DataFlow,
    target: Target,
    suite: Suite,
    ops: list[Any],
    replayers: list[Replayer],
    calls: int,
    opts: Options,
    budget: float,
) -> list[OpResult]:
    out = []
    for op in ops:
        if not _selected(opts, op.name):
            continue
        n = max(5, round(calls * op.weight))
        try:
            r = await run_op(db, suite.group, op, replayers, n, budget)
        except Exception as exc:
            traceback.print_exc()
            r = OpResult(suite.group, op.name, error=f"{type(exc).__name__}: {exc}", note=op.note)
        _log(_line(target, r))
        out.append(r)
    return out


def _vs_base(base: list[OpResult], scale: list[OpResult]) -> dict[str, Any]:
    by_key = {(r.group, r.name): r for r in base}
    out = {}
    for r in scale:
        b = by_key.get((r.group, r.name))
        if b is None or b.ours is None or r.ours is None:
            continue
        out[f"{r.group}.{r.name}"] = {
            "base_p50_ms": b.ours.p50,
            "scale_p50_ms": r.ours.p50,
            "ratio": r.ours.p50 / b.ours.p50 if b.ours.p50 > 0 else None,
        }
    return out


async def _guarded(name: str, coro: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = await coro
    except Exception as exc:
        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {exc}"}
    _log(f"{name}: {result}")
    return result


async def bench_database(target: Target, opts: Options) -> dict[str, Any]:
    """Measure every selected part on ``target``; an unreachable one is reported as such."""
    out: dict[str, Any] = {
        "reachable": target.reachable,
        "error": target.error,
        "server_version": target.server_version,
        "raw_drivers": list(target.raw_drivers),
    }
    if not target.reachable:
        return out
    t0 = time.perf_counter()
    db = DataFlow(target.url)
    suites: list[Suite] = []
    if "approvals" in opts.groups:
        suites.append(ApprovalSuite(db, target))
    if "sessions" in opts.groups:
        suites.append(SessionSuite(db, target))
    replayers = await open_replayers(target)
    laps: dict[str, float] = {}
    out["part_seconds"] = laps
    clock = [time.perf_counter()]

    def lap(part: str) -> None:
        now = time.perf_counter()
        laps[part] = round(now - clock[0], 1)
        clock[0] = now

    try:
        for s in suites:
            await s.populate(opts.base_rows)
        out["base_rows"] = opts.base_rows
        lap("populate")
        base: list[OpResult] = []
        if "ops" in opts.parts:
            for s in suites:
                base += await _measure(
                    db, target, s, s.ops(), replayers, opts.calls, opts, opts.op_budget
                )
            out["ops"] = [r.as_dict() for r in base]
            votes = await _votes(target, suites, opts)
            if votes:
                out["votes"] = votes
            lap("ops")
        if "sync" in opts.parts and target.family == "sqlite" and target.path:
            out["synchronous_normal"] = await _synchronous_normal(target, opts)
            lap("sync")
        if "concurrency" in opts.parts:
            from bench.concurrency import run_concurrency

            coro = asyncio.to_thread(
                run_concurrency, target, opts.concurrency_calls, opts.base_rows
            )
            out["concurrency"] = await _guarded(f"{target.name} concurrency", coro)
            lap("concurrency")
        if "wakeup" in opts.parts and "approvals" in opts.groups:
            from bench.wakeup import run_wakeup

            coro = run_wakeup(db, target, opts.wakeup_rounds)
            out["wakeup"] = await _guarded(f"{target.name} wake-up", coro)
            lap("wakeup")
        if "rss" in opts.parts:
            from bench.process import measure_rss

            coro = asyncio.to_thread(measure_rss, target.url, opts.rss_saves)
            out["rss"] = await _guarded(f"{target.name} RSS", coro)
            lap("rss")
        if "scale" in opts.parts and opts.scale > opts.base_rows:
            out["scale"] = await _scale(db, target, suites, replayers, opts)
            lap("scale")
    finally:
        for r in replayers:
            await r.close()
        await db.close()
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


async def _votes(target: Target, suites: list[Suite], opts: Options) -> dict[str, Any] | None:
    """The vote operations and ``approve`` interleaved, ours only: the p50 of each and its
    ratio to ``approve``'s (what the vote targets are checked on)."""
    names = [n for n in VOTE_OPS if _selected(opts, n)]
    suite = next((s for s in suites if isinstance(s, ApprovalSuite)), None)
    if suite is None or "approve" not in names or len(names) < 2:
        return None
    ops = [op for op in suite.ops() if op.name in names]
    try:
        stats = await run_interleaved(ops, opts.calls)
    except Exception as exc:
        traceback.print_exc()
        return {"error": f"{type(exc).__name__}: {exc}"}
    base = stats["approve"].p50
    result = {
        "calls": opts.calls,
        "ours": {name: s.as_dict() for name, s in stats.items()},
        "ratio_vs_approve": {n: s.p50 / base for n, s in stats.items() if n != "approve"},
    }
    _log(f"{target.name} votes interleaved: {result['ratio_vs_approve']}")
    return result


async def _synchronous_normal(target: Target, opts: Options) -> list[dict[str, Any]]:
    """The commits of the write operations again, on a second file with
    ``synchronous=normal`` (ours and raw alike): what the FULL default costs."""
    from pathlib import Path

    normal = sqlite_target(Path(target.path or "").with_name("bench-normal.db"), "normal")
    db = DataFlow(normal.url)
    suites: list[Suite] = []
    if "approvals" in opts.groups:
        suites.append(ApprovalSuite(db, normal))
    if "sessions" in opts.groups:
        suites.append(SessionSuite(db, normal))
    replayers = await open_replayers(normal)
    results: list[OpResult] = []
    try:
        for s in suites:
            await s.populate(opts.base_rows)
            ops = [op for op in s.ops() if op.name in SYNC_OPS[s.group]]
            results += await _measure(
                db, normal, s, ops, replayers, opts.calls, opts, opts.op_budget
            )
    finally:
        for r in replayers:
            await r.close()
        await db.close()
    return [r.as_dict() for r in results]


async def _scale(
    db: DataFlow,
    target: Target,
    suites: list[Suite],
    replayers: list[Replayer],
    opts: Options,
) -> dict[str, Any]:
    # The same operations with the same number of calls at both sizes.
    calls = opts.scale_calls * 4  # scale operations have weight 0.25 (cleanup 0.125)
    budget = opts.op_budget / 4
    base: list[OpResult] = []
    for s in suites:
        base += await _measure(db, target, s, s.scale_ops(), replayers, calls, opts, budget)
    load: dict[str, float] = {}
    for s in suites:
        _log(f"{target.name}: loading {s.group} up to {opts.scale:,} rows")
        load[s.group] = round(await s.grow(opts.scale), 1)
    results: list[OpResult] = []
    for s in suites:
        results += await _measure(db, target, s, s.scale_ops(), replayers, calls, opts, budget)
    for r in (*base, *results):
        r.plans = await explain(target, r.sample)
    return {
        "rows": opts.scale,
        "load_seconds": load,
        "base_ops": [r.as_dict() for r in base],
        "ops": [r.as_dict() for r in results],
        "vs_base": _vs_base(base, results),
    }
