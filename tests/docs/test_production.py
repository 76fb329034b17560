"""docs/production.md says only what exists: its commands parse, its units verify, its
links resolve, and its environment file is one the code reads."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dataflow import DataFlow
from kaizen.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "production.md"
_FENCE = re.compile(r"^```(\S*)\n(.*?)^```$", re.M | re.S)
#: Where the guide installs kaizen; the tests use this checkout's.
INSTALLED = "/opt/kaizen/bin/kaizen"


def _blocks(*languages: str) -> list[str]:
    text = GUIDE.read_text(encoding="utf-8")
    return [m.group(2) for m in _FENCE.finditer(text) if m.group(1) in languages]


def _commands() -> list[list[str]]:
    """The arguments of every ``kaizen`` command line (shell lines, ``ExecStart=``)."""
    found = []
    for block in _blocks("bash", "ini"):
        for line in block.splitlines():
            words = shlex.split(line.removeprefix("ExecStart="), comments=True)
            at = [i for i, w in enumerate(words) if w == INSTALLED or (i == 0 and w == "kaizen")]
            if at and (at[0] == 0 or words[0] == "sudo"):
                found.append(words[at[0] + 1 :])
    return found


def _units() -> dict[str, str]:
    """The unit files, by the name their first line gives them."""
    units = {}
    for block in _blocks("ini"):
        first = block.splitlines()[0]
        if first.startswith("# /etc/systemd/system/"):
            units[first.rsplit("/", 1)[1]] = block
    return units


def test_the_readme_links_the_guide() -> None:
    assert "(docs/production.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_its_links_resolve() -> None:
    links = re.findall(r"\]\(([^)\s]+)\)", GUIDE.read_text(encoding="utf-8"))
    assert links
    for link in links:
        path, _, fragment = link.partition("#")
        target = (GUIDE.parent / path).resolve() if path else GUIDE
        assert target.is_file(), link
        if fragment:
            headings = re.findall(r"^#+ (.+)$", target.read_text(encoding="utf-8"), re.M)
            assert fragment in {_anchor(h) for h in headings}, link


def test_every_kaizen_command_in_it_parses(capsys: pytest.CaptureFixture[str]) -> None:
    commands = _commands()
    assert len(commands) >= 6, commands  # serve (twice), maintain, three token commands
    for argv in commands:
        try:
            build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"kaizen {shlex.join(argv)}: {capsys.readouterr().err}")


def test_the_environment_file_is_read_by_the_code() -> None:
    (env,) = [b for b in _blocks("ini") if b.startswith("# /etc/kaizen/kaizen.env")]
    settings = dict(line.split("=", 1) for line in env.splitlines()[1:] if line)
    assert set(settings) == {"KAIZEN_DATABASE_URL", "KAIZEN_API_TOKENS_FILE"}
    sources = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "src").rglob("*.py"))
    for name in settings:
        assert f'"{name}"' in sources, name
    DataFlow(settings["KAIZEN_DATABASE_URL"])  # a valid URL with valid options (lazy: no I/O)


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
def test_the_units_verify(tmp_path: Path) -> None:
    units = _units()
    assert set(units) == {"kaizen-serve.service", "kaizen-maintain.service"}
    kaizen = Path(sys.executable).with_name("kaizen")
    for name, text in units.items():
        unit = tmp_path / name
        unit.write_text(text.replace(INSTALLED, str(kaizen)), encoding="utf-8")
        done = subprocess.run(
            ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0 and not done.stderr, f"{name}: {done.stderr}"
