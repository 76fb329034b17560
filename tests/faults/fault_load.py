"""The load of the fault tests: ``load_worker.py`` processes and their call logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Load"]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@dataclass
class Load:
    """Load processes writing through one URL; their call logs."""

    url: str
    out: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, *names: str) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(HERE)])}
        for name in names:
            self.procs[name] = subprocess.Popen(
                [sys.executable, str(HERE / "load_worker.py"), self.url, str(self.out), name],
                env=env,
            )

    def calls(self, name: str | None = None) -> list[dict[str, Any]]:
        names = [name] if name else list(self.procs)
        found = []
        for n in names:
            path = self.out / f"{n}.jsonl"
            if path.exists():
                for line in path.read_text().splitlines():
                    if line.endswith("}"):  # a line cut short by kill -9 is not an ack
                        found.append({**json.loads(line), "worker": n})
        return found

    def acked_after(self, name: str, since: float) -> int:
        return sum(len(c["ids"]) for c in self.calls(name) if c["ok"] and c["t0"] >= since)

    def wait_for(self, done: Callable[[], bool], what: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while not done():
            for name, proc in self.procs.items():
                if proc.poll() is not None and proc.returncode != -9:
                    raise AssertionError(f"load process {name} exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def kill(self, name: str) -> None:
        self.procs[name].kill()
        self.procs[name].wait(10)

    def stop(self) -> None:
        (self.out / "stop").touch()
        for name, proc in self.procs.items():
            try:
                code = proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise AssertionError(f"load process {name} did not stop") from None
            assert code in (0, -9), f"load process {name} exited with {code}"

    def acked_ids(self) -> set[str]:
        return {i for c in self.calls() if c["ok"] for i in c["ids"]}
