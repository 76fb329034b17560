"""Packaging: ``python -m build`` makes the sdist and the wheel; the wheel, installed with
the server extra into a fresh venv, runs ``kaizen demo`` in an empty directory, and the
commands the demo prints work from that install (the inbox's files are in the wheel)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tarfile
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from demo_steps import DemoSteps, clean_env, parse_steps, printed_server
from servers import free_port

ROOT = Path(__file__).resolve().parents[2]
#: Files the install needs beyond the modules: typing markers and the inbox page.
PACKAGE_DATA = ("dataflow/py.typed", "kaizen/py.typed", "kaizen/api/static/index.html")
CORE_REQUIREMENT = "sqlalchemy<2.2,>=2.0.30"
#: What the MCP channel and the framework bridges pull in: none of it in this install.
OPTIONAL = ("mcp", "agents", "openai", "pydantic_ai", "pydantic")
#: Run in the install with the server extra only.
_WITHOUT_EXTRAS = f"""
import importlib, subprocess, sys
import dataflow, kaizen.governance, kaizen.integrations.nexus, kaizen.api, kaizen.cli
assert not [m for m in sys.modules if m.split(".")[0] in {OPTIONAL!r}], "an extra was imported"
for module, extra in [("kaizen.mcp", "mcp"), ("kaizen.integrations.openai_agents", "openai-agents"),
                      ("kaizen.integrations.pydantic_ai", "pydantic-ai")]:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        assert f"kaizen-dataflow[{{extra}}]" in str(exc), str(exc)
    else:
        raise AssertionError(module + " imported without its extra")
done = subprocess.run([sys.executable, "-m", "kaizen.cli", "mcp", "--user", "u"],
                      capture_output=True, text=True)
assert done.returncode == 11 and "kaizen-dataflow[mcp]" in done.stderr, done
print("extras ok")
"""


def _run(*argv: str | Path, cwd: Path, timeout: float = 300) -> str:
    done = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout


def _source_copy(dest: Path) -> Path:
    """The checkout's files (tracked, and new ones not ignored) copied to ``dest``: the
    build writes ``build/`` and ``*.egg-info`` there, not into the checkout."""
    listed = _run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT)
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the work tree is not
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            target.chmod(source.stat().st_mode)
    return dest


def _check_archives(dist: Path) -> Path:
    (wheel,) = dist.glob("kaizen_dataflow-*-py3-none-any.whl")
    (sdist,) = dist.glob("kaizen_dataflow-*.tar.gz")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "kaizen = kaizen.cli:main" in archive.read(entry_points).decode()
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires = [
            line.removeprefix("Requires-Dist: ")
            for line in archive.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist: ")
        ]
    # The core install is SQLAlchemy alone; drivers, server, MCP and bridges are extras.
    assert [r for r in requires if "extra ==" not in r] == [CORE_REQUIREMENT]
    for extra in ("postgres", "mysql", "server", "mcp", "openai-agents", "pydantic-ai"):
        assert any(f'extra == "{extra}"' in r for r in requires), extra
    assert set(PACKAGE_DATA) <= names
    with tarfile.open(sdist) as archive:
        top = sdist.name.removesuffix(".tar.gz")
        members = {m.name.removeprefix(top + "/") for m in archive.getmembers()}
    assert {f"src/{name}" for name in PACKAGE_DATA} <= members
    assert {"pyproject.toml", "README.md"} <= members
    return wheel


def _api(steps: DemoSteps, request_id: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{steps.inbox}api/approvals/{request_id}",
        headers={"Authorization": f"Bearer {steps.token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body: dict[str, Any] = json.load(response)
    return body


def test_the_wheel_installs_in_a_fresh_venv_and_runs_the_demo(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    source = _source_copy(tmp_path / "source")
    _run(sys.executable, "-m", "build", "--outdir", dist, source, cwd=source)
    wheel = _check_archives(dist)

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    # This venv's pip installs into the new one (faster than bootstrapping a pip there).
    install = ("-m", "pip", "--python", python, "install", "-q", "--disable-pip-version-check")
    _run(sys.executable, *install, f"{wheel}[server]", cwd=tmp_path)
    where = _run(python, "-c", "import dataflow, kaizen; print(kaizen.__file__)", cwd=tmp_path)
    assert Path(where.strip()).is_relative_to(venv)  # the installed files, not the checkout
    assert _run(python, "-c", _WITHOUT_EXTRAS, cwd=tmp_path).strip() == "extras ok"

    empty = tmp_path / "empty"
    empty.mkdir()
    out = _run(venv / "bin" / "kaizen", "demo", "--port", str(free_port()), cwd=empty)
    assert "approved by lead-456" in out and "requested -> approved (verified: True)" in out
    assert "task-3  priority 3  Ship version 2" in out
    assert {p.name for p in empty.iterdir()} == {
        "kaizen.db",
        "kaizen-tokens.json",
        "kaizen-tokens.json.lock",
    }

    steps = parse_steps(out)
    assert steps.serve.startswith(f"{venv / 'bin' / 'kaizen'} ")
    with printed_server(steps, empty, clean_env()):
        with urllib.request.urlopen(steps.inbox, timeout=10) as response:
            assert 'id="token"' in response.read().decode()  # the inbox page, from the wheel
        assert _api(steps, steps.request_id)["status"] == "pending"
        approved = _run(*shlex.split(steps.approve), cwd=empty)
        assert f"approved {steps.request_id} as lead-456" in approved
        assert _api(steps, steps.request_id)["approved_by"] == "lead-456"
