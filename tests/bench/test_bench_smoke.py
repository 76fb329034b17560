"""Smoke test of the benchmark harness: it runs and writes results of the expected shape.

Times are not checked: benchmarks are not tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Driver calls per write on PostgreSQL and MySQL (as bench/goals.py targets them).
WRITES = {
    "approvals.save": 1,
    "approvals.update": 2,
    "approvals.approve": 2,
    "approvals.delegated_vote": 2,
    "sessions.save": 1,
    "sessions.update_session_state": 1,
}


def test_quick_run_writes_results(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # Nothing listens on port 1: PostgreSQL must be reported unreachable, not skipped.
    env["BENCH_POSTGRES_URL"] = "postgresql://postgres@127.0.0.1:1/test"
    args = ["--quick", "--databases", "sqlite,postgresql", "--parts", "ops,scale"]
    args += ["--calls", "5", "--scale", "1500", "--scale-calls", "3", "--out", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr

    results = json.loads((tmp_path / "latest.json").read_text())
    assert {"cpu_model", "cores", "python", "versions", "date_utc"} <= set(results["machine"])
    assert results["settings"]["quick"] is True

    pg = results["databases"]["postgresql"]
    assert pg["reachable"] is False and pg["error"]

    sqlite = results["databases"]["sqlite"]
    assert sqlite["reachable"] is True
    assert sqlite["raw_drivers"] == ["aiosqlite", "sqlite3"]
    ops = {(op["group"], op["op"]): op for op in sqlite["ops"]}
    for name in ("save", "load", "update", "approve", "timeout_sweep", "count_by_status"):
        assert ("approvals", name) in ops
    for name in ("save", "load", "update_session_state", "list_by_user", "cleanup_expired"):
        assert ("sessions", name) in ops
    for op in ops.values():
        assert op["error"] is None, op
        assert op["ours"]["n"] >= 5 and op["ours"]["p50_ms"] > 0
        assert set(op["raw"]) == {"aiosqlite", "sqlite3"}
        assert set(op["ratio_p50"]) == {"aiosqlite", "sqlite3"}
        assert op["replay_mismatches"] == 0, op
        assert op["statements_per_call"] >= 1

    scale = sqlite["scale"]
    assert scale["rows"] == 1500
    assert "approvals.list_by_status" in scale["vs_base"]
    assert "sessions.cleanup_expired" in scale["vs_base"]

    goals = results["goals"]
    assert goals and {"target", "database", "value", "limit", "met"} <= set(goals[0])
    assert any(g["database"] == "sqlite" and "p50 at 1,500 rows" in g["target"] for g in goals)

    table = (tmp_path / "latest.md").read_text()
    assert "## sqlite" in table and "## Targets" in table and "unreachable" in table


def test_servers_show_the_expert_baseline_and_one_round_trip_writes(tmp_path: Path) -> None:
    """On PostgreSQL and MySQL: the hand-written baseline beside the replay, the writes
    at their driver-call targets, replays matching their captures (scripts included)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    args = ["--quick", "--databases", "postgresql,mysql", "--parts", "ops", "--calls", "5"]
    args += ["--ops", "save,update,approve,delegated_vote,update_session_state"]
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "latest.json").read_text())
    for name in ("postgresql", "mysql"):
        db = results["databases"][name]
        assert db["reachable"], db["error"]
        ops = {f"{op['group']}.{op['op']}": op for op in db["ops"]}
        assert set(WRITES) <= set(ops)
        for key in WRITES:
            op = ops[key]
            assert op["error"] is None, op
            assert op["replay_mismatches"] == 0, op
            assert op["raw"]["expert"]["p50_ms"] > 0, key
            assert op["statements_per_call"] <= WRITES[key], (name, key, op)
    goals = {(g["database"], g["target"]) for g in results["goals"]}
    assert ("postgresql", "approvals.approve p50 vs expert") in goals
    assert "| expert p50 |" in (tmp_path / "latest.md").read_text()
