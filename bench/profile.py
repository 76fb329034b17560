"""``python -m bench.profile``: where one operation spends its time (cProfile).

Example:
    python -m bench.profile --database postgresql --op sessions.list_active --calls 500

Only our calls are profiled; each operation's untimed setup and teardown run
outside the profiler. The output is the top functions by own time and by
cumulative time.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import io
import os
import pstats
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.runner import Op
from bench.suite_approvals import ApprovalSuite
from bench.suite_sessions import SessionSuite
from bench.targets import ALL_DATABASES, drop_target, prepare_target

__all__ = ["main"]


async def _profile(database: str, name: str, calls: int, rows: int, top: int) -> str:
    from dataflow import DataFlow

    with tempfile.TemporaryDirectory(prefix="dataflow-profile-") as tmp:
        target = await prepare_target(database, Path(tmp))
        if not target.reachable:
            return f"{database} is unreachable: {target.error}"
        try:
            async with DataFlow(target.url) as db:
                suites: dict[str, ApprovalSuite | SessionSuite] = {
                    "approvals": ApprovalSuite(db, target),
                    "sessions": SessionSuite(db, target),
                }
                group, _, op_name = name.partition(".")
                suite = suites[group]
                await suite.populate(rows)
                ops: dict[str, Op] = {o.name: o for o in (*suite.ops(), *suite.scale_ops())}
                op = ops[op_name]
                prof = cProfile.Profile()
                for i in range(calls + 20):
                    arg = op.make(i)
                    if op.setup:
                        await op.setup(arg)
                    if i >= 20:  # the first calls warm caches, unprofiled
                        prof.enable()
                    await op.call(arg)
                    prof.disable()
                    if op.teardown:
                        await op.teardown(arg)
        finally:
            await drop_target(target)
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


#: Loop methods counted per call in the concurrency profile.
_COUNTED = ("_run_once", "create_future", "create_task", "call_at")


class _Counts:
    """Calls of a few event-loop methods, counted by wrapping them on the loop class."""

    def __init__(self) -> None:
        import asyncio.base_events as be

        self.n: collections.Counter[str] = collections.Counter()
        for name in _COUNTED:
            orig = getattr(be.BaseEventLoop, name)

            def counted(*a: Any, _orig: Any = orig, _name: str = name, **k: Any) -> Any:
                self.n[_name] += 1
                return _orig(*a, **k)

            setattr(be.BaseEventLoop, name, counted)


class _NoBarrier:
    def wait(self) -> None:
        pass


def _profiled_child(target: Any, proc: int, calls: int, rows: int, barrier: Any, out: Any) -> None:
    """A concurrency worker whose timed windows are profiled, ours and raw apart."""
    from bench import concurrency

    counts = _Counts()
    # CPU time, not wall time: on a busy machine a send() to the server often
    # lasts as long as the server runs on the core it took over.
    profiles = {side: cProfile.Profile(time.process_time) for side in ("ours", "raw")}
    totals: dict[str, collections.Counter[str]] = {side: collections.Counter() for side in profiles}
    window = concurrency._window
    side = ["ours"]
    ours_round, raw_round = concurrency._ours_round, concurrency._raw_round

    async def ours(*a: Any) -> Any:
        side[0] = "ours"
        return await ours_round(*a)

    async def raw(*a: Any) -> Any:
        side[0] = "raw"
        return await raw_round(*a)

    async def timed(barrier: Any, items: list[Any], run: Any) -> dict[str, Any]:
        prof, total = profiles[side[0]], totals[side[0]]
        barrier.wait()  # outside the profile: the other process may still be setting up
        before = collections.Counter(counts.n)
        cpu = time.process_time()
        prof.enable()
        try:
            result: dict[str, Any] = await window(_NoBarrier(), items, run)
        finally:
            prof.disable()
        total["cpu_us"] += int((time.process_time() - cpu) * 1e6)
        total["calls"] += len(items)
        total.update(counts.n - before)
        return result

    concurrency._window = timed  # type: ignore[assignment]
    concurrency._ours_round = ours  # type: ignore[assignment]
    concurrency._raw_round = raw  # type: ignore[assignment]
    prof_dir = tempfile.mkdtemp(prefix="dataflow-cprof-")
    try:
        result = asyncio.run(concurrency._child_main(target, proc, calls, rows, barrier))
        for name, prof in profiles.items():
            prof.dump_stats(os.path.join(prof_dir, f"{name}.prof"))
        result["profile"] = {"dir": prof_dir, "counts": {k: dict(v) for k, v in totals.items()}}
        out.put(result)
    except BaseException as exc:
        barrier.abort()
        out.put({"error": f"{type(exc).__name__}: {exc}"})


def _layer(path: str, name: str) -> str:
    if path == "~":
        return "syscalls" if any(w in name for w in ("socket", "epoll", "fsync")) else "builtins"
    for needle, layer in (
        ("/asyncpg/", "driver"),
        ("/asyncmy/", "driver"),
        ("aiosqlite", "driver"),
        ("/asyncio/", "asyncio"),
        ("selectors.py", "asyncio"),
        ("dialects/pool.py", "dataflow pool"),
        ("dialects/connection.py", "dataflow connection"),
        ("dataflow/core.py", "dataflow core"),
        ("dialects/base.py", "dataflow core"),
        ("/dataflow/dialects/", "dataflow dialect"),
        ("/dataflow/", "dataflow (rest)"),
        ("/kaizen/", "kaizen"),
        ("/json/", "json"),
        ("/bench/", "bench"),
    ):
        if needle in path:
            return layer
    return "generated code" if path == "<string>" else "stdlib (rest)"


async def _profile_concurrency(database: str, calls: int, rows: int, top: int) -> str:
    from bench import concurrency
    from bench.suite_approvals import ApprovalSuite
    from bench.suite_sessions import SessionSuite
    from dataflow import DataFlow

    with tempfile.TemporaryDirectory(prefix="dataflow-profile-") as tmp:
        target = await prepare_target(database, Path(tmp))
        if not target.reachable:
            return f"{database} is unreachable: {target.error}"
        try:
            async with DataFlow(target.url) as db:
                for suite in (ApprovalSuite(db, target), SessionSuite(db, target)):
                    await suite.populate(rows)
            child = concurrency._child
            concurrency._child = _profiled_child  # type: ignore[assignment]
            try:
                result = await asyncio.to_thread(concurrency.run_concurrency, target, calls, rows)
            finally:
                concurrency._child = child  # type: ignore[assignment]
        finally:
            await drop_target(target)
    if "error" in result:
        return f"failed: {result['error']}"
    out = io.StringIO()
    ratio = result["throughput_ratio"]
    out.write(
        f"{database}: throughput ours {result['ours']['throughput_per_s']}/s, "
        f"raw {result['raw']['throughput_per_s']}/s, ratio {ratio:.2f} (profiled: slower); "
        "the profiles below are of CPU time\n\n"
    )
    parts = result["profiles"]
    for name in ("ours", "raw"):
        counts: collections.Counter[str] = collections.Counter()
        for part in parts:
            counts.update(part["counts"][name])
        n = max(1, counts["calls"])
        per = ", ".join(f"{k} {counts[k] / n:.2f}" for k in _COUNTED)
        out.write(f"{name}: {n} calls; per call: CPU {counts['cpu_us'] / n:.0f} us, {per}\n")
    for name in ("ours", "raw"):
        stats = pstats.Stats(*(os.path.join(p["dir"], f"{name}.prof") for p in parts))
        layers: collections.Counter[str] = collections.Counter()
        for (path, _, fn), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
            layers[_layer(path, fn)] += own
        total = sum(layers.values()) or 1.0
        out.write(f"\n{name}: own time by layer ({total:.3f} s profiled)\n")
        for layer, own in layers.most_common():
            out.write(f"  {layer:22s} {own:7.3f} s {own / total:6.1%}\n")
        stats.stream = out  # type: ignore[attr-defined]
        stats.strip_dirs().sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    """Profile one operation and print the hottest functions."""
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    p.add_argument("--database", choices=ALL_DATABASES, default="sqlite")
    p.add_argument("--op", help="group.operation, e.g. approvals.approve")
    p.add_argument(
        "--concurrency", action="store_true", help="profile the concurrency part instead"
    )
    p.add_argument("--calls", type=int, default=500, help="calls (per process: --concurrency)")
    p.add_argument("--rows", type=int, default=1000, help="rows per table first")
    p.add_argument("--top", type=int, default=25)
    a = p.parse_args(argv)
    if a.concurrency:
        print(asyncio.run(_profile_concurrency(a.database, a.calls, a.rows, a.top)))
        return 0
    if not a.op:
        p.error("--op is required (or --concurrency)")
    print(asyncio.run(_profile(a.database, a.op, a.calls, a.rows, a.top)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
