"""docs/DEPLOYMENT.md followed on this machine, under a temporary root instead of ``/``.

The guide's own commands make the CA and certificates (``edgecascade deploy pki``) and provision
the cloud, the gateway and a camera (``edgecascade deploy provision-*``); both brokers run the
committed configurations (TLS, passwords, ACLs); the example configs from deploy/config are
installed; then each systemd unit's ExecStart runs with the unit's Environment= and
EnvironmentFile= and a notify socket, as systemd would start it (no systemd runs here). The
database is PostgreSQL, as in production. Deviations, all about this machine: paths under the
temporary root, free ports, the model and frames from the repository, a higher escalation
threshold so that the short run certainly escalates some frames, and telemetry sent often and
forwarded sample by sample so that the test sees the camera count its verdicts.

It passes when frames from the camera are stored in the cloud through gateway and brokers,
escalations come back as verdicts at the camera, every notify unit reports READY=1 and pings the
watchdog, and every process stops cleanly on SIGTERM (systemd's KillSignal).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edgecascade.brokers import free_port
from edgecascade.cli import main
from edgecascade.processes import ProcessGroup
from tests.deploy.installed import InstalledBroker, install_broker, read_env_file, read_unit
from tests.utils.mqtt import wait_until
from tests.utils.paths import REPO, sample_subset

pytestmark = pytest.mark.e2e
EXECUTABLE = "/opt/edgecascade/venv/bin/edgecascade"


@dataclass
class Service:
    """One unit's process and what it told its notify socket."""

    unit: str
    proc: subprocess.Popen[bytes]
    notify: socket.socket
    notices: list[str] = field(default_factory=list)

    def said(self, notice: str) -> Callable[[], bool]:
        return lambda: notice in self.poll_notices()

    def poll_notices(self) -> list[str]:
        while True:
            try:
                self.notices += self.notify.recv(4096).decode().split("\n")
            except BlockingIOError:
                return self.notices


class Root:
    """The temporary root: /etc/edgecascade, /var/lib, the brokers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.etc = path / "etc" / "edgecascade"
        self.var = path / "var" / "lib"
        self.etc.mkdir(parents=True)

    def rewrite(self, text: str) -> str:
        return text.replace("/etc/edgecascade/", f"{self.etc}/").replace(
            "/var/lib/", f"{self.var}/"
        )


def guide_setup(root: Root, pki: Path) -> tuple[InstalledBroker, InstalledBroker]:
    """The guide's certificate, broker, provisioning and config steps."""
    servers = [
        "--server",
        "site-broker=localhost,127.0.0.1",
        "--server",
        "cloud-broker=localhost,127.0.0.1",
    ]
    assert main(["deploy", "pki", str(pki), *servers]) == 0
    site = install_broker("site.conf", "site-broker", root.path / "site", pki)
    cloud = install_broker("cloud.conf", "cloud-broker", root.path / "cloud", pki)
    shutil.copy(pki / "ca.crt", root.etc / "ca.crt")
    common = ["--ca-file", str(root.etc / "ca.crt"), "--out", str(root.etc)]
    cloud_at = [
        "--cloud-host",
        "127.0.0.1",
        "--cloud-port",
        str(cloud.broker.port),
        "--cloud-dir",
        str(cloud.etc),
    ]
    site_at = [
        "--site-host",
        "127.0.0.1",
        "--site-port",
        str(site.broker.port),
        "--site-dir",
        str(site.etc),
    ]
    broker_at = ["--broker-host", "127.0.0.1", "--broker-dir"]
    assert (
        main(
            [
                "deploy",
                "provision-cloud",
                *broker_at,
                str(cloud.etc),
                "--broker-port",
                str(cloud.broker.port),
                *common,
            ]
        )
        == 0
    )
    assert main(["deploy", "provision-gateway", "site1", *site_at, *cloud_at, *common]) == 0
    assert (
        main(
            [
                "deploy",
                "provision-device",
                "site1",
                "cam1",
                *broker_at,
                str(site.etc),
                "--broker-port",
                str(site.broker.port),
                *common,
            ]
        )
        == 0
    )
    for name in ("agent", "gateway", "cloud"):
        text = (REPO / "deploy" / "config" / f"{name}.toml").read_text()
        text = text.replace("/opt/edgecascade/models/", f"{REPO}/models/fashion/")
        (root.etc / f"{name}.toml").write_text(root.rewrite(text))
    return site, cloud


def start_unit(
    group: ProcessGroup, root: Root, unit_name: str, extra_env: dict[str, str]
) -> Service:
    """The unit's ExecStart as systemd runs it: environment, state directory, notify socket."""
    unit = read_unit(REPO / "deploy" / "systemd" / unit_name)
    argv = root.rewrite(unit["ExecStart"][0].replace("%i", "1")).split()
    assert argv[0] == EXECUTABLE
    env = dict(line.split("=", 1) for line in unit.get("Environment", []))
    env = {key: root.rewrite(value) for key, value in env.items()}
    for env_file in unit.get("EnvironmentFile", []):
        env |= read_env_file(Path(root.rewrite(env_file.lstrip("-"))))
    for directory in unit.get("StateDirectory", []):
        (root.var / directory).mkdir(parents=True, exist_ok=True)
    # A short name: a socket's path has at most 107 bytes, and pytest's tmp_path is deep.
    short = unit_name.removeprefix("edgecascade-").split("@")[0].split(".")[0]
    notify_path = root.path / f"{short}.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        notify.bind(str(notify_path))
    except OSError:
        notify.close()
        raise
    notify.setblocking(False)
    env["NOTIFY_SOCKET"] = str(notify_path)
    if "WatchdogSec" in unit:
        env["WATCHDOG_USEC"] = "2000000"  # the mechanism, faster than the unit's 30 s
    proc = group.spawn(
        unit_name, [sys.executable, "-m", "edgecascade", *argv[1:]], env=env | extra_env
    )
    return Service(unit_name, proc, notify)


def api_get(url: str, token: str) -> dict[str, object] | None:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            data: dict[str, object] = json.loads(response.read())
            return data
    except (urllib.error.URLError, OSError, ValueError):
        return None


def total(url: str, token: str) -> int:
    data = api_get(url, token)
    return int(str(data["total"])) if data else -1


def test_the_deployment_guide_runs_here(tmp_path: Path, pg_server_url: str) -> None:
    root = Root(tmp_path / "root")
    site, cloud = guide_setup(root, tmp_path / "pki")
    frames = root.var / "edgecascade-agent" / "frames"
    sample_subset(frames, per_class=5)
    http_port = free_port()
    cloud_env = {
        "EC_CLOUD_DATABASE_URL": pg_server_url,
        "EC_CLOUD_HTTP__HOST": "127.0.0.1",
        "EC_CLOUD_HTTP__PORT": str(http_port),
    }
    extras = {
        "edgecascade-worker@.service": cloud_env,
        # Telemetry often and forwarded sample by sample: the test waits for a verdict in it.
        "edgecascade-agent.service": {
            "EC_AGENT_ESCALATION__THRESHOLD": "0.9",
            "EC_AGENT_TELEMETRY_INTERVAL_S": "0.5",
        },
        "edgecascade-gateway.service": {"EC_GATEWAY_TELEMETRY_WINDOW_S": "0"},
    }
    group = ProcessGroup(tmp_path / "logs")
    services: list[Service] = []
    with site.broker, cloud.broker:
        try:
            services.append(start_unit(group, root, "edgecascade-cloud.service", cloud_env))
            api = f"http://127.0.0.1:{http_port}"
            assert wait_until(lambda: api_get(f"{api}/healthz", "") is not None, timeout=90), (
                group.log_tail("edgecascade-cloud.service")
            )
            token = create_token(root, cloud_env)
            for unit in (
                "edgecascade-worker@.service",
                "edgecascade-gateway.service",
                "edgecascade-agent.service",
            ):
                services.append(start_unit(group, root, unit, extras.get(unit, {})))
            check_the_fleet(group, services, api, token)
        finally:
            codes = {s.unit: group.stop(s.proc) for s in reversed(services)}
            for service in services:
                service.poll_notices()
                service.notify.close()
    # systemd counts an exit on SIGTERM as clean (uvicorn re-raises it after its shutdown).
    clean = {0, -signal.SIGTERM}
    assert all(code in clean for code in codes.values()), codes
    assert "Application shutdown complete" in group.log_tail("edgecascade-cloud.service", 50)
    for service in services:
        if service.unit != "edgecascade-cloud.service":
            assert "STOPPING=1" in service.notices, service.unit
    stats = json.loads((root.var / "edgecascade-agent" / "stats.json").read_text())
    assert stats["verdicts"] >= 1, stats


def create_token(root: Root, cloud_env: dict[str, str]) -> str:
    """`edgecascade cloud token create` with the service's environment, as the guide does it."""
    env = {**os.environ, **read_env_file(root.etc / "cloud.env"), **cloud_env}
    argv = [
        sys.executable,
        "-m",
        "edgecascade",
        "cloud",
        "token",
        "create",
        "--name",
        "ops",
        "--role",
        "viewer",
        "--config",
        str(root.etc / "cloud.toml"),
    ]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


def check_the_fleet(group: ProcessGroup, services: list[Service], api: str, token: str) -> None:
    for service in services:
        if service.unit != "edgecascade-cloud.service":
            assert wait_until(service.said("READY=1"), timeout=90), (
                f"{service.unit} never reported READY=1:\n{group.log_tail(service.unit)}"
            )
    results = f"{api}/api/results?limit=1"
    assert wait_until(lambda: total(results, token) >= 20, timeout=120), group.log_tail(
        "edgecascade-gateway.service"
    ) + group.log_tail("edgecascade-agent.service")
    judged = f"{api}/api/escalations?limit=1&judged=true"
    assert wait_until(lambda: total(judged, token) >= 1, timeout=60), group.log_tail(
        "edgecascade-worker@.service"
    )
    for service in services:
        if service.unit != "edgecascade-cloud.service":
            assert wait_until(service.said("WATCHDOG=1"), timeout=10), service.unit
        assert service.proc.poll() is None, f"{service.unit}:\n{group.log_tail(service.unit)}"
    # A verdict reached the camera: its telemetry counts it (read back through the API).
    assert wait_until(lambda: verdicts_received(api, token) >= 1, timeout=60), group.log_tail(
        "edgecascade-agent.service"
    )


def verdicts_received(api: str, token: str) -> float:
    field = "counters.verdicts.received"
    data = api_get(f"{api}/api/telemetry?site=site1&device=cam1&field={field}", token)
    points = data["points"] if data else []
    assert isinstance(points, list)
    return float(max((point["fields"][field] or 0 for point in points), default=0))
