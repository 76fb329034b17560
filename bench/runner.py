"""Timing one operation: ours against the same statements replayed raw.

Per operation: a few warm-up calls; an untimed capture pass recording the
statements of ``n`` calls; then ``n`` timed rounds, each timing one replay of a
recorded call per raw driver and one fresh, equivalent call of ours (the order
rotates every round, so a burst of machine noise does not land on one side).
Every call is wrapped in the operation's untimed ``setup``/``teardown``, which
put back the state a call changes, so a replay meets the same rows its
capture met; the replay's row counts are compared with the capture's.
"""

from __future__ import annotations

import gc
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.capture import Recorder, Replayer, Stmt
from bench.expert import EXPERTS, Expert
from dataflow import DataFlow

__all__ = ["EXPERT", "Op", "OpResult", "Stats", "interleaved", "run_op"]

Step = Callable[[Any], Awaitable[Any]]
#: The column of the hand-written baseline (:mod:`bench.expert`) beside the raw replays.
EXPERT = "expert"


@dataclass(frozen=True)
class _Expert:
    """The expert's version of an operation, on one replayer's raw connection."""

    replayer: Replayer
    run: Expert

    async def call(self, arg: Any) -> Any:
        return await self.run(getattr(self.replayer, "conn"), arg)  # noqa: B009


@dataclass(frozen=True)
class Stats:
    """Latency summary in milliseconds."""

    n: int
    p50: float
    p95: float
    mean: float

    @classmethod
    def of(cls, samples_ns: Sequence[int]) -> Stats:
        data = sorted(samples_ns)
        if not data:
            return cls(0, float("nan"), float("nan"), float("nan"))

        def pct(q: float) -> float:
            # Nearest rank: an observed value, no interpolation.
            return data[min(len(data) - 1, max(0, round(q * len(data)) - 1))] / 1e6

        return cls(len(data), pct(0.50), pct(0.95), sum(data) / len(data) / 1e6)

    def as_dict(self) -> dict[str, float | int]:
        return {"n": self.n, "p50_ms": self.p50, "p95_ms": self.p95, "mean_ms": self.mean}


@dataclass
class Op:
    """One benchmarked operation.

    Args:
        name: Operation name as reported.
        call: Our call, given the argument ``make`` built.
        make: Argument of call ``i`` (distinct ids for writes); no database work.
        setup: Untimed: put the state call ``arg`` expects in place.
        teardown: Untimed: undo what ``setup`` and the call changed.
        weight: Share of the default call count (heavy operations run fewer).
    """

    name: str
    call: Step
    make: Callable[[int], Any] = lambda i: i
    setup: Step | None = None
    teardown: Step | None = None
    weight: float = 1.0
    note: str = ""


@dataclass
class OpResult:
    """Measurements of one operation on one database."""

    group: str
    name: str
    ours: Stats | None = None
    raw: dict[str, Stats] = field(default_factory=dict)
    statements: float = 0.0  # driver calls per operation call, as captured
    mismatches: int = 0  # replays whose row counts differed from the capture
    error: str | None = None
    note: str = ""
    sample: list[Stmt] = field(default_factory=list)  # one captured call's statements
    plans: list[dict[str, Any]] = field(default_factory=list)

    def ratios(self) -> dict[str, float]:
        if self.ours is None:
            return {}
        return {d: self.ours.p50 / s.p50 for d, s in self.raw.items() if s.p50 > 0}

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "op": self.name,
            "ours": self.ours.as_dict() if self.ours else None,
            "raw": {d: s.as_dict() for d, s in self.raw.items()},
            "ratio_p50": self.ratios(),
            "statements_per_call": round(self.statements, 2),
            "replay_mismatches": self.mismatches,
            "error": self.error,
            "note": self.note,
            **({"plans": self.plans} if self.plans else {}),
        }


async def _maybe(step: Step | None, arg: Any) -> None:
    if step is not None:
        await step(arg)


async def _timed(step: Step, arg: Any) -> tuple[int, Any]:
    t0 = time.perf_counter_ns()
    out = await step(arg)
    return time.perf_counter_ns() - t0, out


async def _capture(
    db: DataFlow, op: Op, n: int, ids: itertools.count[int]
) -> list[tuple[Any, list[Stmt]]]:
    recorded = []
    async with Recorder(db) as rec:
        for _ in range(n):
            arg = op.make(next(ids))
            await _maybe(op.setup, arg)
            rec.take()  # drop what setup sent
            await op.call(arg)
            recorded.append((arg, rec.take()))
            await _maybe(op.teardown, arg)
    return recorded


async def _warm_up(op: Op, calls: int, budget: float, ids: itertools.count[int]) -> float:
    """Run up to ``calls`` untimed calls; return the median seconds of one (with set-up)."""
    spent: list[float] = []
    while len(spent) < calls and sum(spent) < budget:
        t0 = time.perf_counter()
        arg = op.make(next(ids))
        await _maybe(op.setup, arg)
        await op.call(arg)
        await _maybe(op.teardown, arg)
        spent.append(time.perf_counter() - t0)
    return sorted(spent)[len(spent) // 2]


async def run_op(
    db: DataFlow,
    group: str,
    op: Op,
    replayers: Sequence[Replayer],
    n: int,
    budget: float = 60.0,
) -> OpResult:
    """Measure ``op`` with ``n`` calls of ours and ``n`` replays per raw driver.

    ``n`` shrinks (to no fewer than 5) when the warm-up predicts the operation
    would take more than ``budget`` seconds; the result says so.
    """
    result = OpResult(group, op.name, note=op.note)
    ids = itertools.count()
    warm = max(2, min(20, n // 10))
    per_call = await _warm_up(op, warm, budget / 20, ids)
    # Every round runs the capture, our call and one replay per driver.
    affordable = int(budget / (per_call * (3 + len(replayers))))
    if affordable < n:
        n = max(5, affordable)
        cut = f"cut to {n} calls by the time budget"
        result.note = "; ".join(filter(None, [result.note, cut]))
    recorded = await _capture(db, op, n, ids)
    result.statements = sum(len(s) for _, s in recorded) / max(1, len(recorded))
    result.sample = recorded[0][1] if recorded else []
    for r in replayers:  # warm the raw connections' statement caches
        for arg, stmts in recorded[: max(1, min(warm, 5, int(budget / 20 / per_call)))]:
            await _maybe(op.setup, arg)
            try:
                await r.replay(stmts)
            except BaseException:
                await r.recover()
                raise
            await _maybe(op.teardown, arg)

    ours: list[int] = []
    raw: dict[str, list[int]] = {r.name: [] for r in replayers}
    sides: list[Replayer | _Expert | None] = [None, *replayers]
    for r in replayers:  # the expert's hand-written version, on that driver's connection
        expert = EXPERTS.get(r.name, {}).get(f"{group}.{op.name}")
        if expert is not None:
            sides.append(_Expert(r, expert))
            raw[EXPERT] = []
            for _ in range(warm):
                arg = op.make(next(ids))
                await _maybe(op.setup, arg)
                await expert(getattr(r, "conn"), arg)  # noqa: B009 - every replayer has one
                await _maybe(op.teardown, arg)
    gc.collect()
    for i, (captured_arg, stmts) in enumerate(recorded):
        fresh = op.make(next(ids))
        for side in sides[i % len(sides) :] + sides[: i % len(sides)]:
            arg = fresh if side is None or isinstance(side, _Expert) else captured_arg
            await _maybe(op.setup, arg)
            if side is None:
                dt, _ = await _timed(op.call, arg)
                ours.append(dt)
            elif isinstance(side, _Expert):
                dt, _ = await _timed(side.call, arg)
                raw[EXPERT].append(dt)
            else:
                try:
                    dt, counts = await _timed(side.replay, stmts)
                except BaseException:
                    await side.recover()
                    raise
                raw[side.name].append(dt)
                if counts != [s.result for s in stmts]:
                    result.mismatches += 1
            await _maybe(op.teardown, arg)
    result.ours = Stats.of(ours)
    result.raw = {name: Stats.of(v) for name, v in raw.items()}
    return result


async def interleaved(ops: Sequence[Op], n: int) -> dict[str, Stats]:
    """Time ``n`` calls of each of ``ops`` (ours only), one of each per round in an order
    rotating every round: their ratios hold while the machine's load drifts, which
    operations measured one after the other do not."""
    ids = itertools.count()
    samples: dict[str, list[int]] = {op.name: [] for op in ops}
    for _ in range(max(1, n // 10)):  # warm-up
        for op in ops:
            arg = op.make(next(ids))
            await _maybe(op.setup, arg)
            await op.call(arg)
            await _maybe(op.teardown, arg)
    gc.collect()
    for i in range(n):
        for op in [*ops[i % len(ops) :], *ops[: i % len(ops)]]:
            arg = op.make(next(ids))
            await _maybe(op.setup, arg)
            dt, _ = await _timed(op.call, arg)
            samples[op.name].append(dt)
            await _maybe(op.teardown, arg)
    return {name: Stats.of(v) for name, v in samples.items()}
