"""``python -m bench``: run the benchmarks and write ``bench/results/latest.{json,md}``."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.machine import machine_info
from bench.report import write_results
from bench.targets import ALL_DATABASES, CLUSTER_DATABASES, drop_target, prepare_target

__all__ = ["Options", "main", "parse_args"]

GROUPS = ("approvals", "sessions")
PARTS = ("ops", "sync", "scale", "concurrency", "wakeup", "import", "rss")
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Options:
    """What to run, parsed from the command line."""

    databases: list[str]
    groups: list[str]
    ops: list[str]
    parts: list[str]
    calls: int
    scale: int
    scale_calls: int
    base_rows: int
    concurrency_calls: int
    wakeup_rounds: int
    import_repeats: int
    rss_saves: int
    op_budget: float
    quick: bool
    out: Path
    sqlite_synchronous: str = "full"


def _csv(value: str, allowed: Sequence[str], what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown {what}: {', '.join(bad)} (choose from {', '.join(allowed)})"
        )
    return items


def parse_args(argv: Sequence[str] | None = None) -> Options:
    """Parse the command line (see ``python -m bench --help``)."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument(
        "--databases",
        default=",".join(ALL_DATABASES),
        help="comma-separated (default: the single servers; also: "
        f"{', '.join(CLUSTER_DATABASES)}, the test suite's clusters)",
    )
    p.add_argument("--groups", default=",".join(GROUPS), help="approvals,sessions (default: both)")
    p.add_argument(
        "--ops",
        default="",
        help="only operations whose name contains one of these (comma-separated)",
    )
    p.add_argument("--parts", default=",".join(PARTS), help=f"subset of {','.join(PARTS)}")
    p.add_argument("--skip", default="", help="parts to leave out, e.g. scale,concurrency")
    p.add_argument("--quick", action="store_true", help="fast smoke run: few calls, small scale")
    p.add_argument(
        "--calls", type=int, help="calls per single-row operation (default 2000; quick 30)"
    )
    p.add_argument(
        "--scale", type=int, help="rows per table for the scale part (default 1000000; quick 5000)"
    )
    p.add_argument(
        "--scale-calls", type=int, help="calls per operation at scale (default 100; quick 10)"
    )
    p.add_argument(
        "--base-rows",
        type=int,
        default=1000,
        help="rows per table for the operations (default 1000)",
    )
    p.add_argument(
        "--concurrency-calls", type=int, help="calls per process (default 3000; quick 150)"
    )
    p.add_argument("--wakeup-rounds", type=int, help="wake-ups measured (default 20; quick 3)")
    p.add_argument(
        "--out", type=Path, default=RESULTS, help="results directory (default bench/results)"
    )
    p.add_argument(
        "--op-budget", type=float, help="seconds one operation may take (default 60; quick 5)"
    )
    p.add_argument(
        "--sqlite-synchronous",
        choices=("full", "normal"),
        default="full",
        help="PRAGMA synchronous of the SQLite target, ours and raw (default full, ours too)",
    )
    a = p.parse_args(argv)
    try:
        parts = [x for x in _csv(a.parts, PARTS, "part") if x not in _csv(a.skip, PARTS, "part")]
        opts = Options(
            databases=_csv(a.databases, (*ALL_DATABASES, *CLUSTER_DATABASES), "database"),
            groups=_csv(a.groups, GROUPS, "group"),
            ops=[o.strip() for o in a.ops.split(",") if o.strip()],
            parts=parts,
            calls=a.calls or (30 if a.quick else 2000),
            scale=a.scale if a.scale is not None else (5000 if a.quick else 1_000_000),
            scale_calls=a.scale_calls or (10 if a.quick else 100),
            base_rows=a.base_rows,
            concurrency_calls=a.concurrency_calls or (150 if a.quick else 3000),
            wakeup_rounds=a.wakeup_rounds or (3 if a.quick else 20),
            import_repeats=3 if a.quick else 5,
            rss_saves=100 if a.quick else 1000,
            op_budget=a.op_budget or (5.0 if a.quick else 60.0),
            quick=a.quick,
            out=a.out,
            sqlite_synchronous=a.sqlite_synchronous,
        )
    except argparse.ArgumentTypeError as exc:
        p.error(str(exc))
    return opts


def settings(opts: Options) -> dict[str, Any]:
    return {
        "databases": opts.databases,
        "groups": opts.groups,
        "ops": opts.ops,
        "parts": opts.parts,
        "calls": opts.calls,
        "base_rows": opts.base_rows,
        "scale_rows": opts.scale,
        "scale_calls": opts.scale_calls,
        "concurrency_calls_per_process": opts.concurrency_calls,
        "wakeup_rounds": opts.wakeup_rounds,
        "op_budget_seconds": opts.op_budget,
        "quick": opts.quick,
        "sqlite_synchronous": opts.sqlite_synchronous,
    }


async def run(opts: Options) -> dict[str, Any]:
    """Run everything ``opts`` selects; return the results document."""
    from bench.database import bench_database
    from bench.process import measure_imports

    results: dict[str, Any] = {
        "schema": 1,
        "machine": machine_info(),
        "settings": settings(opts),
        "databases": {},
    }
    started = time.perf_counter()
    if "import" in opts.parts:
        try:
            results["import"] = measure_imports(opts.import_repeats)
        except Exception as exc:
            results["import"] = {"error": f"{type(exc).__name__}: {exc}"}
    with tempfile.TemporaryDirectory(prefix="dataflow-bench-") as tmp:
        for name in opts.databases:
            target = await prepare_target(name, Path(tmp), synchronous=opts.sqlite_synchronous)
            if not target.reachable:
                log(f"{name}: UNREACHABLE, not measured ({target.error})")
            try:
                results["databases"][name] = await bench_database(target, opts)
            finally:
                await drop_target(target)
            write_results(results, opts.out)  # partial results survive an interrupted run
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    return results


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench``."""
    opts = parse_args(argv)
    results = asyncio.run(run(opts))
    json_path, md_path = write_results(results, opts.out)
    log(f"wrote {json_path} and {md_path} in {results['total_seconds']} s")
    unreachable = [n for n, d in results["databases"].items() if not d.get("reachable")]
    if unreachable:
        log(f"unreachable (reported, not measured): {', '.join(unreachable)}")
    return 0
