"""The README's promises: its first lines are the two set-up commands, and every command it names exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import typer.main

from deepfake_detect.cli import app as cli_app

README = Path(__file__).resolve().parent.parent / "README.md"


def _registered_commands() -> set[str]:
    cli_app._load_commands()
    group = typer.main.get_command(cli_app.app)
    return set(group.commands)  # type: ignore[attr-defined]


def test_first_block_is_setup_with_demo_then_the_test_command() -> None:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block is not None and text.index(block.group(0)) < 200, "the commands must open the README"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(lines) == 2
    setup, tests = lines
    assert "pip install torch==2.14.1 torchvision==0.29.1" in setup
    assert setup.rstrip().endswith("deepfake-detect demo")
    assert shlex.split(tests)[:3] == ["python", "-m", "pytest"]
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert tests in ci, "CI must run the README's test command"


def test_every_command_the_readme_names_is_registered() -> None:
    text = README.read_text(encoding="utf-8")
    named = set(re.findall(r"(?:^|`|&& )deepfake-detect ([a-z][a-z-]+)", text, re.M))  # in code, not prose
    registered = _registered_commands()
    assert "detect" in registered
    assert named <= registered, f"README names unknown commands: {sorted(named - registered)}"
