"""Measurements that need a fresh interpreter: import time and peak memory.

Import time: ``import dataflow, kaizen.governance, kaizen.integrations.nexus``
timed inside each of several fresh processes (interpreter start-up excluded);
the median is reported, with the database drivers the import pulled in.

Peak RSS: a fresh process saves 1,000 approval requests and 1,000 sessions,
then reports its peak resident set. The peak is the kernel's ``VmHWM``: on
Linux ``ru_maxrss`` keeps the high-water mark of the process that forked the
child across ``exec`` (a child of a big bench process "peaks" at the parent's
size before it runs a line), so ``ru_maxrss`` is reported beside it only for
reference.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from typing import Any

__all__ = ["measure_imports", "measure_rss"]

_IMPORT_CODE = """
import json, sys, time
t0 = time.perf_counter()
import dataflow, kaizen.governance, kaizen.integrations.nexus
dt = time.perf_counter() - t0
drivers = [m for m in ("asyncpg", "asyncmy", "aiosqlite", "aiomysql") if m in sys.modules]
print(json.dumps({"seconds": dt, "drivers": drivers, "modules": len(sys.modules)}))
"""

_RSS_CODE = """
import asyncio, json, resource, sys, uuid
from datetime import UTC, datetime, timedelta
from dataflow import DataFlow
from kaizen.governance import ApprovalStatus, ExternalAgentApprovalRequest
from kaizen.governance import ExternalAgentApprovalStorage
from kaizen.integrations.nexus import CrossChannelSession, SessionStorage
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None

after_import = status("VmRSS")

def request():
    now = datetime.now(UTC)
    return ExternalAgentApprovalRequest(
        id="rss-" + uuid.uuid4().hex, external_agent_id="agent-rss", requested_by="user-rss",
        approvers=["lead-rss"], status=ApprovalStatus.PENDING, approval_reason="rss",
        request_metadata={"cost": 15.0}, created_at=now, deadline_at=now + timedelta(hours=1))

async def main(url, n):
    async with DataFlow(url) as db:
        approvals, sessions = ExternalAgentApprovalStorage(db), SessionStorage(db)
        for _ in range(n):
            await approvals.save(request())
            await sessions.save(CrossChannelSession(user_id="user-rss", state={"k": 1}))

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
peak = status("VmHWM")
print(json.dumps({"after_import_kib": after_import, "peak_kib": peak, "maxrss_kib": maxrss}))
"""


def _run(code: str, *args: str) -> dict[str, Any]:
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"child process failed: {tail}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure_imports(repeats: int = 5) -> dict[str, Any]:
    """Median import time of the three packages over ``repeats`` fresh processes."""
    runs = [_run(_IMPORT_CODE) for _ in range(repeats)]
    times = [r["seconds"] * 1000 for r in runs]
    return {
        "repeats": repeats,
        "median_ms": round(statistics.median(times), 1),
        "min_ms": round(min(times), 1),
        "max_ms": round(max(times), 1),
        "drivers_imported": runs[0]["drivers"],
        "modules_loaded": runs[0]["modules"],
    }


def _mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


def measure_rss(url: str, saves: int = 1000) -> dict[str, Any]:
    """Peak RSS of a fresh process doing ``saves`` approval and ``saves`` session saves."""
    r = _run(_RSS_CODE, url, str(saves))
    return {
        "saves_each": saves,
        "after_import_mib": _mib(r["after_import_kib"]),
        "peak_mib": _mib(r["peak_kib"]),
        "ru_maxrss_mib": _mib(r["maxrss_kib"]),
    }
