"""The console script: help for every command, clean errors for bad configuration."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from edgecascade.cli import build_parser, main
from edgecascade.configref import reference
from tests.utils.paths import REPO


def _commands(parser: argparse.ArgumentParser, path: list[str]) -> list[list[str]]:
    """Every command and subcommand of the CLI, walked from the parser itself."""
    found = [path] if path else []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.extend(_commands(sub, [*path, name]))
    return found


COMMANDS = _commands(build_parser(), [])


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_explains_itself(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: edgecascade " + " ".join(command))
    assert len(out.splitlines()) > 3


def test_bad_config_file_fails_naming_field_and_file(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('device = "cam/1"\n[source]\nfps = "fast"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "edgecascade", "agent", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 2
    assert str(config) in proc.stderr
    assert "device" in proc.stderr and "source.fps" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_model_fails_cleanly(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edgecascade", "agent", "--model", str(tmp_path / "nope.tflite")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "nope.tflite" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_readme_configuration_reference_is_generated() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("<!-- config-reference:start", 1)[1].split("-->", 1)[1]
    section = section.split("<!-- config-reference:end -->", 1)[0]
    assert section.strip() == reference().strip(), "run: edgecascade config-reference"
