"""The deployment files are valid: systemd accepts the units, the example configs load."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cloud.settings import CloudSettings
from edge_agent.settings import AgentSettings
from gateway.settings import GatewaySettings
from shared.config import load_settings
from tests.utils.paths import REPO

UNITS = sorted((REPO / "deploy" / "systemd").glob("*.service"))


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_systemd_accepts_the_unit(unit: Path, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    text = unit.read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text and "ProtectSystem=strict" in text
    # verify checks that ExecStart exists: point it at this interpreter for the check.
    copy = tmp_path / unit.name
    copy.write_text(text.replace("/opt/edgecascade/venv/bin/edgecascade", sys.executable))
    proc = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_example_configs_are_valid() -> None:
    agent = load_settings(AgentSettings, REPO / "deploy" / "config" / "agent.toml")
    assert agent.gateway_id == "gateway"
    gateway = load_settings(GatewaySettings, REPO / "deploy" / "config" / "gateway.toml")
    assert gateway.site == agent.site
    cloud = load_settings(CloudSettings, REPO / "deploy" / "config" / "cloud.toml")
    assert cloud.db_url.startswith("postgresql+psycopg://") and cloud.worker.threads == 2
