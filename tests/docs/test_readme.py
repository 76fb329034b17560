"""The README's DataFlow example runs as written (on SQLite, in a temporary directory)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_dataflow_example_runs(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    example = next(b for b in blocks if "escape_like" in b)
    example += (
        "\nasync def check() -> None:\n"
        "    async with DataFlow('sqlite:///app.db') as again:\n"
        "        again.model(indexes=[Index('status'), Index('tags', membership=True)])(Task)\n"
        "        row = await again.get(Task, 't1')\n"
        "        assert row['status'] == 'done' and row['meta'] == {'seen': True}, row\n"
        "asyncio.run(check())\nprint('ok')\n"
    )
    script = tmp_path / "example.py"
    script.write_text(example, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_transaction_example_runs(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    example = next(b for b in blocks if "escape_like" in b)
    snippet = next(b for b in blocks if "tx.savepoint()" in b)
    body = "".join(f"        {line}\n" for line in snippet.splitlines())
    example += (
        "\nfrom dataflow import DuplicateKeyError\n\n"
        "async def transactions() -> None:\n"
        "    async with db:\n"
        f"{body}"
        "        ids = [r['id'] for r in await db.select(Task, order_by='id')]\n"
        "        assert ids == ['t1', 't2'], ids\n"
        "asyncio.run(transactions())\nprint('ok')\n"
    )
    script = tmp_path / "example.py"
    script.write_text(example, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_policies_example_runs(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    example = next(b for b in blocks if "save_policy" in b)
    script = tmp_path / "policies.py"
    script.write_text(example, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "pending 1 of 2",
        "approved",
        "{'replicas': 40} {'replicas': 4}",
        "True",
        "bo",
        "2",
        "['policy_set']",
    ]
