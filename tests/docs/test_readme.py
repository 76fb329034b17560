"""Every ```python block of README.md is a complete program: it runs as a file and prints
what it says it prints.

Each block runs with ``python -X dev -W error::ResourceWarning`` in a temporary directory,
and its standard error must be clean (no warning, no "Exception ignored", no traceback):
a handle left open would show here. A block that reads ``$DATABASE_URL`` runs once per test
database (SQLite by its own default, PostgreSQL, MariaDB); the others use the SQLite file
they name. Anything not meant to run is fenced as another language (``bash``, ``text``,
``json``...), and a fence without a language fails the test, so nothing slips through
untested.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


class Sample(NamedTuple):
    """A python block of the README: a string only it contains, and what it prints."""

    marker: str
    prints: list[str]


#: Every python block of the README, by name.
SAMPLES: dict[str, Sample] = {
    "dataflow-in-a-minute": Sample("escape_like", ["['50% off']", "1 0", "done {'seen': True}"]),
    "transactions": Sample("tx.savepoint()", ["[('n1', 'first'), ('n2', 'second')]"]),
    "batches": Sample(
        "db.batch()",
        ["p1 1", "p2 0", "paid ['p1']", "['begin', 'commit', 'execute', 'fetch']"],
    ),
    "governance-quick-start": Sample('external_agent_id="copilot-001"', ["approved lead-456"]),
    "approval-policies": Sample(
        "except AlreadyVotedError",
        [
            "pending 1 of 2",
            "approved",
            "{'replicas': 40} {'replicas': 4}",
            "True",
            "bo",
            "2",
            "policy_set ops",
        ],
    ),
    "sessions-quick-start": Sample("create_session_async", ["{'key': 'value'} ['api']"]),
    "pydantic-ai-bridge": Sample(
        "PydanticAIApprovals(",
        ["refund {'order_id': 42, 'amount': 500}", "refunded 50 on order 42"],
    ),
    "openai-agents-bridge": Sample(
        "OpenAIAgentsApprovals(",
        ["refund {'order_id': 42, 'amount': 500}", "refunded 50 on order 42"],
    ),
    "mcp-agent": Sample(
        "KAIZEN_MCP",
        ["pending", "approved {'replicas': 4}", "{'step': 'deployed'} ['mcp']"],
    ),
}
#: Fence languages for what is not Python to run.
OTHER_LANGUAGES = {"bash", "text", "json", "toml", "ini", "nginx", "caddyfile", "sql"}
#: How a block says it takes the test database's URL.
TAKES_URL = 'os.environ.get("DATABASE_URL"'
#: asyncio's debug mode (-X dev) reports callbacks slower than 0.1 s: timing, not a fault.
_SLOW_CALLBACK = re.compile(r"Executing .+ took \d+\.\d+ seconds")
_FENCE = re.compile(r"^```(\S*)\n(.*?)^```$", re.M | re.S)


class Block(NamedTuple):
    line: int
    language: str
    code: str

    @property
    def name(self) -> str:
        """The name of the one sample this block is (asserting there is one)."""
        names = [name for name, sample in SAMPLES.items() if sample.marker in self.code]
        assert len(names) == 1, (
            f"README.md line {self.line}: a python block must be exactly one of SAMPLES "
            f"(it matches {names}); add it there with what it prints"
        )
        return names[0]

    @property
    def prints(self) -> list[str]:
        return SAMPLES[self.name].prints


def _blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    return [
        Block(text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2))
        for m in _FENCE.finditer(text)
    ]


PYTHON = [b for b in _blocks() if b.language == "python"]
LOCAL = [b for b in PYTHON if TAKES_URL not in b.code]
ON_EACH_DATABASE = [b for b in PYTHON if TAKES_URL in b.code]


def _name(block: Block) -> str:
    try:
        return block.name
    except AssertionError:  # reported by test_every_block_is_accounted_for
        return f"line{block.line}"


def run_block(block: Block, workdir: Path, database_url: str | None = None) -> list[str]:
    """Run ``block`` as a file in ``workdir``; return its output lines (asserting a clean run)."""
    script = workdir / f"readme_line{block.line}.py"
    script.write_text(block.code, encoding="utf-8")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "KAIZEN_DATABASE_URL", "PYTHONWARNINGS")
    }
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", str(script)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    where = f"README.md line {block.line}"
    assert done.returncode == 0, f"{where} failed:\n{done.stderr}"
    noise = [line for line in done.stderr.splitlines() if not _SLOW_CALLBACK.fullmatch(line)]
    assert not noise, f"{where} wrote to stderr:\n{done.stderr}"
    return done.stdout.splitlines()


def test_every_block_is_accounted_for() -> None:
    blocks = _blocks()
    unnamed = [b.line for b in blocks if not b.language]
    assert not unnamed, f"fences without a language at README.md lines {unnamed}"
    unknown = {b.language for b in blocks} - OTHER_LANGUAGES - {"python"}
    assert not unknown, f"fence languages not known to this test: {unknown}"
    names = [b.name for b in PYTHON]
    assert sorted(names) == sorted(SAMPLES), "each of SAMPLES is one python block"


def _with_items(tree: ast.Module) -> set[str]:
    """The source of every item of every ``async with`` in the block."""
    return {
        ast.unparse(item.context_expr)
        for node in ast.walk(tree)
        if isinstance(node, ast.AsyncWith)
        for item in node.items
    }


@pytest.mark.parametrize("block", PYTHON, ids=_name)
def test_every_dataflow_is_closed(block: Block) -> None:
    """Each DataFlow is the item of an ``async with``, or a name that is one: SQLite on
    Python 3.11 leaves no ResourceWarning to catch a handle never closed, so look."""
    tree = ast.parse(block.code)
    closed = _with_items(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "DataFlow":
            parent = next(
                (p for p in ast.walk(tree) if isinstance(p, ast.Assign) and p.value is node),
                None,
            )
            names = {ast.unparse(t) for t in parent.targets} if parent else set()
            assert ast.unparse(node) in closed or names & closed, (
                f"README.md line {block.line}: {ast.unparse(node)} is never closed (use async with)"
            )


@pytest.mark.parametrize("block", LOCAL, ids=_name)
def test_the_block_runs_as_a_file(block: Block, tmp_path: Path) -> None:
    assert run_block(block, tmp_path) == block.prints
    # A reader runs it again: what the first run stored must not make it fail.
    assert run_block(block, tmp_path) == block.prints


@pytest.mark.parametrize("block", ON_EACH_DATABASE, ids=_name)
def test_the_block_runs_on_each_database(block: Block, db_url: str, tmp_path: Path) -> None:
    # On SQLite the block runs on its own default, a file in the working directory.
    url = None if db_url.startswith("sqlite") else db_url
    assert run_block(block, tmp_path, url) == block.prints
    assert run_block(block, tmp_path, url) == block.prints
    if url is None:
        assert (tmp_path / "kaizen.db").exists()
