"""The deployment files are valid: systemd accepts and scores the units, the users they run as
are created, the example configs load, the broker limits fit the contract's messages."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgecascade.cloud.settings import CloudSettings
from edgecascade.edge_agent.settings import AgentSettings
from edgecascade.gateway.settings import GatewaySettings
from edgecascade.shared.config import load_settings
from edgecascade.shared.contract import KINDS, Role, spec_of
from edgecascade.shared.outbox import DEFAULT_REPLAY_S
from edgecascade.shared.topics import Kind
from tests.deploy.installed import read_unit
from tests.utils.paths import REPO

SYSTEMD = REPO / "deploy" / "systemd"
UNITS = sorted(SYSTEMD.glob("*.service"))
IDS = [u.name for u in UNITS]
MAX_EXPOSURE = 4.0  # systemd-analyze security: "OK" is below 5


def _runnable_copy(unit: Path, tmp_path: Path) -> Path:
    """verify checks that ExecStart exists: point it at this interpreter's script."""
    script = Path(sys.executable).with_name("edgecascade")
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace("/opt/edgecascade/venv/bin/edgecascade", str(script)))
    return copy


def _systemd_analyze() -> str:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    return analyze


def test_every_component_has_a_unit() -> None:
    commands = {" ".join(read_unit(u)["ExecStart"][0].split()[1:3]) for u in UNITS}
    assert {c.replace(" --config", "") for c in commands} == {
        "agent",
        "gateway",
        "cloud",
        "cloud worker",
        "cloud trainer",
    }


@pytest.mark.parametrize("unit", UNITS, ids=IDS)
def test_systemd_accepts_the_unit(unit: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [_systemd_analyze(), "verify", str(_runnable_copy(unit, tmp_path))],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("unit", UNITS, ids=IDS)
def test_the_unit_runs_confined_as_its_own_user(unit: Path, tmp_path: Path) -> None:
    settings = read_unit(unit)
    user = settings["User"][0]
    assert user.startswith("edgecascade-") and settings["Group"] == [user]
    assert settings["StateDirectory"][0].startswith("edgecascade-")
    for key, value in (
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "true"),
        ("ProtectHome", "true"),
        ("Restart", "always"),
    ):
        assert settings.get(key) == [value], f"{unit.name}: {key}"
    assert settings["EnvironmentFile"][0].startswith("/etc/edgecascade/")
    # A watchdog only where systemd is told the process is up (Type=notify).
    assert ("WatchdogSec" in settings) == (settings["Type"] == ["notify"])
    copy = _runnable_copy(unit, tmp_path)
    proc = subprocess.run(
        [_systemd_analyze(), "security", "--offline=true", str(copy)],
        capture_output=True,
        text=True,
    )
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout)
    if found is None:
        pytest.skip(f"systemd-analyze security --offline is not supported: {proc.stderr[-200:]}")
    assert float(found.group(1)) <= MAX_EXPOSURE, proc.stdout


def test_sysusers_creates_the_users_the_units_run_as(tmp_path: Path) -> None:
    sysusers = shutil.which("systemd-sysusers")
    if sysusers is None:
        pytest.skip("systemd-sysusers is not installed")
    (tmp_path / "etc").mkdir()
    config = (SYSTEMD / "edgecascade.sysusers").read_text()
    subprocess.run(
        [sysusers, "--root", str(tmp_path), "-"],
        input=config,
        text=True,
        check=True,
        capture_output=True,
    )
    users = {line.split(":")[0] for line in (tmp_path / "etc" / "passwd").read_text().splitlines()}
    assert users == {read_unit(u)["User"][0] for u in UNITS}


def test_example_configs_are_valid() -> None:
    agent = load_settings(AgentSettings, REPO / "deploy" / "config" / "agent.toml")
    assert agent.gateway_id == "gateway"
    gateway = load_settings(GatewaySettings, REPO / "deploy" / "config" / "gateway.toml")
    assert gateway.site == agent.site and gateway.batch.compress
    cloud = load_settings(CloudSettings, REPO / "deploy" / "config" / "cloud.toml")
    assert cloud.db_url.startswith("postgresql+psycopg://") and cloud.worker.threads == 2


def _broker_setting(conf: str, key: str) -> int:
    text = (REPO / "deploy" / "mosquitto" / conf).read_text()
    found = re.search(rf"^{key} (\d+)$", text, re.MULTILINE)
    assert found is not None, f"{conf} does not set {key}"
    return int(found.group(1))


def test_broker_size_limits_fit_the_contracts_messages() -> None:
    # What a device sends or reads crosses the site broker; everything crosses the cloud broker.
    device_rows = [s for s in KINDS.values() if Role.DEVICE in s.publishers | s.readers]
    assert {s.pattern for s in device_rows} >= {"escalation", "model/offer", "reply/<name>"}
    largest_device_message = max(s.limit for s in device_rows)
    assert _broker_setting("site.conf", "message_size_limit") >= largest_device_message
    largest_message = max(s.limit for s in KINDS.values())
    assert largest_message == spec_of(Kind.RESULT_BATCH).limit
    assert _broker_setting("cloud.conf", "message_size_limit") >= largest_message
    # Bounded queues (0 messages = by bytes) and in-flight windows, never Mosquitto's defaults.
    for conf in ("site.conf", "cloud.conf"):
        assert _broker_setting(conf, "max_queued_messages") == 0
        assert _broker_setting(conf, "max_queued_bytes") > 0
        assert _broker_setting(conf, "max_inflight_messages") > 0
    ingest_window = CloudSettings().ingest.batch_size
    assert _broker_setting("cloud.conf", "max_inflight_messages") >= ingest_window


def test_outboxes_replay_past_the_brokers_autosave() -> None:
    """A broker killed between autosaves loses messages it acknowledged; the shipped configs, and
    the defaults a component started from flags alone runs with (docker-compose.yml), keep
    acknowledged outbox rows longer than that, so the devices and the gateway send them again."""
    agent = load_settings(AgentSettings, REPO / "deploy" / "config" / "agent.toml")
    gateway = load_settings(GatewaySettings, REPO / "deploy" / "config" / "gateway.toml")
    assert AgentSettings().outbox_replay_s == GatewaySettings().outbox_replay_s == DEFAULT_REPLAY_S
    demo = re.search(
        r"^autosave_interval (\d+)$",
        (REPO / "deploy" / "docker" / "mosquitto-demo.conf").read_text(),
        re.MULTILINE,
    )
    assert demo is not None and int(demo.group(1)) < DEFAULT_REPLAY_S
    # The camera publishes to the site broker (or the bridging one); the gateway to both.
    for conf in ("site.conf", "site-bridge.conf"):
        assert agent.outbox_replay_s > _broker_setting(conf, "autosave_interval")
    for conf in ("site.conf", "cloud.conf"):
        assert gateway.outbox_replay_s > _broker_setting(conf, "autosave_interval")
