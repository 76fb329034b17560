"""``./run demo`` installs what the demo's next steps need, then runs ``kaizen demo``.

The script runs against a stand-in venv whose ``python`` and ``kaizen`` only record how
they were called, so the test neither creates nor reinstalls a real one; what ``kaizen
demo`` then does is tested for real (tests/cli, tests/api/test_demo_e2e.py,
tests/packaging/test_wheel.py)."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

from demo_steps import clean_env

ROOT = Path(__file__).resolve().parents[2]
_RECORDER = '#!/bin/sh\necho "{name} $* (in $PWD)" >> "{log}"\n'


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_run_demo_installs_the_server_and_drivers_then_runs_kaizen_demo(tmp_path: Path) -> None:
    venv, log = tmp_path / "venv", tmp_path / "calls.log"
    (venv / "bin").mkdir(parents=True)
    for name in ("python", "kaizen"):
        stub = venv / "bin" / name
        stub.write_text(_RECORDER.format(name=name, log=log))
        stub.chmod(0o755)
    done = subprocess.run(
        [str(ROOT / "run"), "demo", "--port", "8123"],
        cwd=tmp_path,
        env={**clean_env(), "VENV": str(venv)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert calls[-1] == f"kaizen demo --port 8123 (in {ROOT})"
    (install,) = [c for c in calls if " -e " in c]
    assert "--group" not in install  # not the dev tools
    extras = re.search(r" -e \.\[([a-z,]+)\] ", install)
    assert extras, install

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    defined = project["optional-dependencies"]
    installed = _requirement_names([r for e in extras[1].split(",") for r in defined[e]])
    # kaizen serve (the server extra) and the drivers of the databases the README shows.
    needed = ("server", "postgres", "mysql")
    assert all(_requirement_names(defined[e]) <= installed for e in needed), installed
