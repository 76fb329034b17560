"""``python -m bench.peers``: ours beside LangGraph, the OpenAI Agents SDK and Google ADK.

Every system persists a session (thread) of 10 keys on the same databases in the same run:
write p50/p95 (one key changed, or one item appended), read p50/p95 (the whole session),
``ours p50 / peer p50`` per operation, and a 4-process lost-update check for each. Writes
``bench/results/peers.{json,md}``; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from bench.machine import machine_info
from bench.peers.google_adk import GoogleADK, GoogleADKSqlite
from bench.peers.harness import (
    KEYS,
    Database,
    System,
    drop_database,
    lost_updates,
    prepare_database,
    summary,
    timed,
)
from bench.peers.langgraph_checkpoint import LangGraph
from bench.peers.openai_agents import OpenAIAgentsSQLAlchemy, OpenAIAgentsSQLite
from bench.peers.ours import Ours

__all__ = ["main"]

SYSTEMS: tuple[type[System], ...] = (
    Ours,
    LangGraph,
    OpenAIAgentsSQLite,
    OpenAIAgentsSQLAlchemy,
    GoogleADK,
    GoogleADKSqlite,
)
DATABASES = ("sqlite", "postgresql", "mysql")
RESULTS = Path(__file__).resolve().parent.parent / "results"
#: Why a peer is not measured on a database.
NOT_SUPPORTED = {
    ("langgraph", "mysql"): "LangGraph ships no MySQL checkpointer (only Postgres and SQLite)",
    ("openai-sqlite", "postgresql"): "SQLiteSession is SQLite only (SQLAlchemySession is measured)",
    ("openai-sqlite", "mysql"): "SQLiteSession is SQLite only (SQLAlchemySession is measured)",
    ("adk-sqlite", "postgresql"): "SqliteSessionService is SQLite only",
    ("adk-sqlite", "mysql"): "SqliteSessionService is SQLite only",
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _csv(value: str, allowed: Sequence[str]) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise SystemExit(f"unknown: {', '.join(bad)} (choose from {', '.join(allowed)})")
    return items


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    keys = [s.key for s in SYSTEMS]
    p = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__)
    p.add_argument("--databases", default=",".join(DATABASES), help="comma-separated")
    p.add_argument("--systems", default=",".join(keys), help=f"subset of {','.join(keys)}")
    p.add_argument("--calls", type=int, default=500, help="timed calls per operation (500)")
    p.add_argument("--warmup", type=int, default=50, help="untimed calls first (50)")
    p.add_argument("--rounds", type=int, default=5, help="rounds, systems rotated each (5)")
    p.add_argument("--processes", type=int, default=4, help="lost-update check processes (4)")
    p.add_argument("--keys", type=int, default=25, help="keys each process writes (25)")
    p.add_argument("--skip-race", action="store_true", help="no lost-update check")
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    a = p.parse_args(argv)
    a.databases = _csv(a.databases, DATABASES)
    a.systems = _csv(a.systems, keys)
    if "ours" not in a.systems:
        a.systems.insert(0, "ours")  # the ratios need it
    return a


async def _open(system: System) -> tuple[str, str]:
    """Open ``system``, create its write and read sessions; the read one gets 10 writes."""
    await system.open()
    tag = f"{system.key}-{os.getpid()}"
    w, r = f"write-{tag}", f"read-{tag}"
    await system.create(w)
    await system.create(r)
    for i, key in enumerate(KEYS):
        await system.write(w, key, f"initial-{i:03d}")
        await system.write(r, key, f"initial-{i:03d}")
    return w, r


def _ops(system: System, w: str, r: str) -> dict[str, Callable[[int], Awaitable[Any]]]:
    async def write(i: int) -> None:
        await system.write(w, KEYS[i % len(KEYS)], f"value-{i:06d}")

    async def read(i: int) -> None:
        if await system.read(r) is None:
            raise RuntimeError(f"{system.key}: session {r} not found")

    return {"write": write, "read": read}


async def bench_database(db: Database, a: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"server_version": db.server_version, "systems": {}, "not_measured": {}}
    classes = [c for c in SYSTEMS if c.key in a.systems]
    for cls in classes:
        if db.name not in cls.families:
            out["not_measured"][cls.key] = NOT_SUPPORTED.get((cls.key, db.name), "unsupported")
    live: list[tuple[System, dict[str, Callable[[int], Awaitable[Any]]]]] = []
    for cls in (c for c in classes if db.name in c.families):
        system = cls(db)
        try:
            w, r = await _open(system)
            ops = _ops(system, w, r)
            for fn in ops.values():  # warm-up, untimed
                await timed(fn, 0, a.warmup)
        except Exception as exc:
            out["not_measured"][cls.key] = f"failed: {type(exc).__name__}: {exc}"
            log(f"  {cls.key}: FAILED {type(exc).__name__}: {exc}")
            continue
        live.append((system, ops))
    samples: dict[str, dict[str, list[float]]] = {s.key: {} for s, _ in live}
    per_round = max(1, a.calls // a.rounds)
    for rnd in range(a.rounds):  # call by call, each system in turn, the order rotated
        shift = rnd % max(1, len(live))
        order = live[shift:] + live[:shift]
        for name in ("write", "read"):
            for i in range(a.warmup + rnd * per_round, a.warmup + (rnd + 1) * per_round):
                for system, ops in order:  # a burst of noise hits every system alike
                    ms = await timed(ops[name], i, 1)
                    samples[system.key].setdefault(name, []).extend(ms)
    for system, _ in live:  # operations of one system alone, after the shared ones
        for name, fn in system.extras().items():
            await timed(fn, 0, a.warmup)
            samples[system.key][name] = await timed(fn, a.warmup, a.calls)
    for system, _ in live:
        await system.close()
        stats = {name: summary(ms) for name, ms in samples[system.key].items()}
        out["systems"][system.key] = {
            "label": system.label,
            "api": system.api,
            "semantics": system.semantics,
            "write": stats.pop("write"),
            "read": stats.pop("read"),
            "extras": stats,
        }
        log(
            f"  {system.key}: write p50 {out['systems'][system.key]['write']['p50_ms']} ms, "
            f"read p50 {out['systems'][system.key]['read']['p50_ms']} ms"
        )
    ours = out["systems"].get("ours")
    for key, res in out["systems"].items():
        if key != "ours" and ours is not None:
            res["ours_over_peer"] = {
                op: round(ours[op]["p50_ms"] / res[op]["p50_ms"], 2) for op in ("write", "read")
            }
    if not a.skip_race:
        for system, _ in live:
            path = f"{type(system).__module__}.{type(system).__name__}"
            try:
                race = await lost_updates(path, db, a.processes, a.keys)
            except Exception as exc:
                race = {"error": f"{type(exc).__name__}: {exc}"}
            out["systems"][system.key]["lost_update"] = race
            log(f"  {system.key}: lost-update check {race}")
    return out


def _versions(keys: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for cls in SYSTEMS:
        if cls.key in keys:
            try:
                found.update(cls.versions())
            except Exception as exc:
                found[cls.key] = f"unknown ({exc})"
    return found


def goals(results: dict[str, Any]) -> dict[str, Any]:
    """Issue 5's target: ours ahead of every peer on every shared operation (ratio < 1)."""
    checks = []
    for db, d in results["databases"].items():
        for key, res in d.get("systems", {}).items():
            for op, ratio in res.get("ours_over_peer", {}).items():
                checks.append({"database": db, "peer": key, "op": op, "ratio": ratio})
    behind = [c for c in checks if c["ratio"] >= 1.0]
    return {"target": "ours p50 / peer p50 < 1.0", "checked": len(checks), "behind": behind}


def _ms(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float | int) and v < 10 else f"{v:.1f}"


def _race(r: dict[str, Any] | None) -> tuple[str, str]:
    if not r:
        return "-", "-"
    if "error" in r:
        return "error", r["error"]
    errors = ", ".join(f"{n} {e}" for e, n in sorted(r["errors"].items())) or "none"
    if r["failed"]:
        errors += f"; {r['failed']} gave up after 20 tries"
    return f"{r['lost']} of {r['acknowledged']}", f"{errors} ({r['write_seconds']:.1f} s)"


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "# Peers: session persistence beside LangGraph, the OpenAI Agents SDK and Google ADK",
        "",
        f"{m['date_utc']}, {m['cpu_model']} ({m['cores']} cores), Python {m['python']}, "
        f"load at start {m['load_average_at_start']}. Same run, same databases; "
        f"{results['settings']['calls']} timed calls per operation after "
        f"{results['settings']['warmup']} untimed, interleaved call by call (each system in "
        f"turn, the order rotated in each of {results['settings']['rounds']} rounds). Versions: "
        + ", ".join(f"{k} {v}" for k, v in results["versions"].items())
        + ".",
        "",
        "p50/p95 in ms; `ours/peer` = ours p50 / peer p50 on the same database (below 1.00x: "
        "ours is faster). Lost updates: of the writes the 4 processes had acknowledged, how "
        "many the final read does not show; errors are counted (each was retried), with the "
        "seconds the slowest process took for its writes.",
        "",
        "| database | system | write p50 | write p95 | read p50 | read p95 | ours/peer write "
        "| ours/peer read | lost updates | errors in the check |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for db, d in results["databases"].items():
        if d.get("error"):
            lines.append(f"| {db} | unreachable: {d['error']} | | | | | | | | |")
            continue
        for res in d["systems"].values():
            ratio = {k: f"{v:.2f}x" for k, v in res.get("ours_over_peer", {}).items()}
            lost, errors = _race(res.get("lost_update"))
            w, r = res["write"], res["read"]
            lines.append(
                f"| {db} | {res['label']} | {_ms(w['p50_ms'])} | {_ms(w['p95_ms'])} "
                f"| {_ms(r['p50_ms'])} | {_ms(r['p95_ms'])} "
                f"| {ratio.get('write', '-')} | {ratio.get('read', '-')} | {lost} | {errors} |"
            )
    lines += ["", "Not measured:", ""]
    for db, d in results["databases"].items():
        for key, why in d.get("not_measured", {}).items():
            lines.append(f"- {key} on {db}: {why}")
    g = results["goals"]
    lines += ["", f"Target ({g['target']} on every shared operation): "]
    if g["behind"]:
        lines[-1] += f"**not met** in {len(g['behind'])} of {g['checked']}:"
        lines += [
            f"- {c['peer']} {c['op']} on {c['database']}: {c['ratio']:.2f}x" for c in g["behind"]
        ]
    else:
        lines[-1] += f"**met**, {g['checked']} of {g['checked']}."
    extras = [
        (db, name, s)
        for db, d in results["databases"].items()
        for name, s in d.get("systems", {}).get("ours", {}).get("extras", {}).items()
    ]
    if extras:
        lines += ["", "Ours only (no peer has approvals):", ""]
        lines += ["| database | operation | p50 | p95 |", "|---|---|---:|---:|"]
        lines += [
            f"| {db} | {name} | {_ms(s['p50_ms'])} | {_ms(s['p95_ms'])} |" for db, name, s in extras
        ]
    lines += [
        "",
        "SQLite, as each system sets it up: ours, LangGraph and both OpenAI sessions use WAL; "
        "ADK's services keep SQLite's rollback journal; all run `synchronous=FULL` (SQLite's "
        "default, ours too), so every write waits for its commit to reach the disk (in WAL "
        "one `fdatasync` per write: ours, LangGraph and SQLiteSession, counted with strace; "
        "the rollback journal syncs several times per commit).",
        "",
        "## What each system does",
        "",
    ]
    seen: dict[str, dict[str, Any]] = {}
    for d in results["databases"].values():
        for key, res in d.get("systems", {}).items():
            seen.setdefault(key, res)
    for res in seen.values():
        lines.append(f"- **{res['label']}**: {res['semantics']}. Calls: {res['api']}.")
    return "\n".join(lines) + "\n"


async def run(a: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "schema": 1,
        "machine": machine_info(),
        "versions": _versions(a.systems),
        "settings": {
            "databases": a.databases,
            "systems": a.systems,
            "calls": a.calls,
            "warmup": a.warmup,
            "rounds": a.rounds,
            "state_keys": len(KEYS),
            "race_processes": a.processes,
            "race_keys_per_process": a.keys,
        },
        "databases": {},
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dataflow-peers-") as tmp:
        for name in a.databases:
            log(f"{name}:")
            db = await prepare_database(name, Path(tmp))
            if db.error:
                log(f"  UNREACHABLE, not measured ({db.error})")
                results["databases"][name] = {"error": db.error}
                continue
            try:
                results["databases"][name] = await bench_database(db, a)
            finally:
                await drop_database(db)
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    results["goals"] = goals(results)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    results = asyncio.run(run(a))
    a.out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = a.out / "peers.json", a.out / "peers.md"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    md_path.write_text(markdown(results))
    print(markdown(results))
    log(f"wrote {json_path} and {md_path} in {results['total_seconds']} s")
    return 0
