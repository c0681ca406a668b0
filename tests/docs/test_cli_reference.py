"""docs/cli.md is generated from the CLI: a command or flag added without regenerating it fails
here, with the command that fixes it."""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "scripts" / "gen_cli_docs.py"
REFERENCE = ROOT / "docs" / "cli.md"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_matches_the_cli() -> None:
    generator = _generator()
    expected = generator.render()
    current = REFERENCE.read_text() if REFERENCE.exists() else ""
    if current != expected:
        diff = "".join(list(difflib.unified_diff(
            current.splitlines(keepends=True), expected.splitlines(keepends=True),
            "docs/cli.md", "generated", n=1,
        ))[:60])
        raise AssertionError(
            f"docs/cli.md is out of date with the CLI: run `{generator.COMMAND}` and commit "
            f"the result.\n{diff}"
        )


def test_every_command_has_a_section() -> None:
    text = _generator().render()
    for line in text.splitlines():
        if line.startswith("| [`fogvault "):
            name = line.split("`")[1]
            assert f"\n## {name}\n" in text, name


def test_output_does_not_depend_on_the_terminal(monkeypatch) -> None:
    generator = _generator()
    first = generator.render()
    monkeypatch.setenv("COLUMNS", "37")
    monkeypatch.setenv("TERM", "dumb")
    assert generator.render() == first
