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
import cProfile
import io
import pstats
import tempfile
from collections.abc import Sequence
from pathlib import Path

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


def main(argv: Sequence[str] | None = None) -> int:
    """Profile one operation and print the hottest functions."""
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    p.add_argument("--database", choices=ALL_DATABASES, default="sqlite")
    p.add_argument("--op", required=True, help="group.operation, e.g. approvals.approve")
    p.add_argument("--calls", type=int, default=500)
    p.add_argument("--rows", type=int, default=1000, help="rows per table first")
    p.add_argument("--top", type=int, default=25)
    a = p.parse_args(argv)
    print(asyncio.run(_profile(a.database, a.op, a.calls, a.rows, a.top)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
