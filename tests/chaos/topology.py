"""The whole topology as real processes, each of which the chaos suite can SIGKILL and restart.

Site broker and cloud broker (Mosquitto with persistence, restarted on the same port, config and
persistence directory), a TCP proxy on the gateway's uplink (cut and restored), the cloud service
on PostgreSQL, re-inference workers, the gateway and camera agents, all started with the real
``edgecascade`` command line by :class:`edgecascade.processes.ProcessGroup`.
"""

from __future__ import annotations

import json
import logging
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from edgecascade.brokers import MosquittoBroker, free_port
from edgecascade.processes import ProcessGroup
from tests.utils.mqtt import wait_until
from tests.utils.paths import CLOUD_MODEL, EDGE_MODEL, EVAL_SAMPLE
from tests.utils.proxy import TcpProxy

logger = logging.getLogger(__name__)

SITE = "chaos"
# Reconnect within a second of a peer coming back (the default backs off to 30 s), so the run
# spends its time on faults and recovery rather than on waiting.
FAST_RECONNECT = {
    "EC_AGENT_MQTT__RECONNECT_MAX": "1",
    "EC_GATEWAY_SITE_MQTT__RECONNECT_MAX": "1",
    "EC_GATEWAY_CLOUD_MQTT__RECONNECT_MAX": "1",
    "EC_CLOUD_MQTT__RECONNECT_MAX": "1",
}
# The brokers here save every second (edgecascade.brokers): what they acknowledged in the second
# before a SIGKILL is sent again by the agents' and the gateway's outboxes after they reconnect.
OUTBOX_REPLAY = {"EC_AGENT_OUTBOX_REPLAY_S": "5", "EC_GATEWAY_OUTBOX_REPLAY_S": "5"}
AGENT_ENV = {
    # Many unsure frames, none held back, so escalations and verdicts are exercised too.
    "EC_AGENT_ESCALATION__COOLDOWN_S": "0",
    "EC_AGENT_ESCALATION__BUDGET_PER_MINUTE": "6000",
    "EC_AGENT_ESCALATION__BURST": "100",
    "EC_AGENT_THREADS": "1",
    # A stopped agent leaves only once its outbox is empty (the default gives up after 10 s).
    "EC_AGENT_DRAIN_TIMEOUT_S": "240",
}


@dataclass
class Service:
    """One ``edgecascade`` process that can be killed and started again with the same arguments."""

    name: str
    argv: list[str]
    group: ProcessGroup
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        env = {**FAST_RECONNECT, **OUTBOX_REPLAY, **self.env}
        self.proc = self.group.spawn_cli(self.name, *self.argv, env=env)
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def connections(self) -> int:
        """MQTT connections this service's processes logged so far (each after its CONNACK and
        the subscriptions it sends first; a restarted process appends to the same log)."""
        log = self.group.logdir / f"{self.name}.log"
        return log.read_text(errors="replace").count(": connected to ") if log.exists() else 0

    def has_connected(self) -> bool:
        return self.connections() > 0

    def wait_connections(self, count: int, timeout: float = 90.0) -> None:
        """Until ``count`` connections were logged: the service is back on its brokers."""
        if not wait_until(lambda: self.connections() >= count, timeout=timeout, step=0.1):
            raise AssertionError(f"{self.name} did not reconnect\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        return f"--- {self.name}\n{self.group.log_tail(self.name, lines)}"


class Topology:
    """Brokers, proxy and services under ``workdir``; :meth:`start` brings them up in order."""

    def __init__(
        self, workdir: Path, database_url: str, *, agents: int, workers: int, fps: float
    ) -> None:
        self.workdir = workdir
        self.database_url = database_url
        self.group = ProcessGroup(workdir / "logs")
        self.site_broker = MosquittoBroker(workdir / "site-broker")
        self.cloud_broker = MosquittoBroker(workdir / "cloud-broker")
        self.uplink = TcpProxy(self.cloud_broker.port)
        self.http_port = free_port()
        self.api = f"http://127.0.0.1:{self.http_port}"
        store = ["--database-url", database_url, "--data-dir", str(workdir / "cloud")]
        cloud_mqtt = ["--mqtt-port", str(self.cloud_broker.port)]
        self.cloud = Service(
            "cloud", ["cloud", *store, *cloud_mqtt, "--port", str(self.http_port)], self.group
        )
        self.workers = [
            Service(
                f"worker-{i}",
                [
                    "cloud",
                    "worker",
                    *store,
                    *cloud_mqtt,
                    "--worker-id",
                    f"worker-{i}",
                    "--model",
                    str(CLOUD_MODEL),
                ],
                self.group,
            )
            for i in range(1, workers + 1)
        ]
        self.gateway = Service(
            "gateway",
            [
                "gateway",
                "--site",
                SITE,
                "--data-dir",
                str(workdir / "gateway"),
                "--site-mqtt-port",
                str(self.site_broker.port),
                "--cloud-mqtt-port",
                str(self.uplink.port),
                "--telemetry-window",
                "5",
            ],
            self.group,
        )
        self.agents = [
            Service(
                f"cam{i}",
                [
                    "agent",
                    "--site",
                    SITE,
                    "--device",
                    f"cam{i}",
                    "--model",
                    str(EDGE_MODEL),
                    "--frames",
                    str(EVAL_SAMPLE),
                    "--loop",
                    "--fps",
                    f"{fps:g}",
                    "--threshold",
                    "0.9",
                    "--data-dir",
                    str(self.agent_dir(f"cam{i}")),
                    "--mqtt-port",
                    str(self.site_broker.port),
                ],
                self.group,
                env=AGENT_ENV,
            )
            for i in range(1, agents + 1)
        ]

    def agent_dir(self, name: str) -> Path:
        return self.workdir / "agents" / name

    def start(self, timeout: float = 90.0) -> None:
        self.site_broker.start()
        self.cloud_broker.start()
        self.uplink.__enter__()
        self.cloud.start()
        self.wait_cloud(timeout)
        for worker in self.workers:
            worker.start()
        # A share group that never had a member drops what is published to it: the workers
        # subscribe (and their persistent sessions begin) before any escalation can arrive.
        for worker in self.workers:
            if not wait_until(worker.has_connected, timeout=timeout, step=0.2):
                raise AssertionError(f"{worker.name} did not connect\n{worker.log_tail()}")
        for service in (self.gateway, *self.agents):
            service.start()

    def stop(self) -> None:
        """Stop whatever runs, children first, then the proxy and the brokers."""
        self.group.stop_all()
        self.uplink.__exit__()
        self.site_broker.stop()
        self.cloud_broker.stop()

    def wait_cloud(self, timeout: float = 90.0) -> None:
        """Until the cloud answers ``/healthz`` with its ingest connected to the broker."""
        if not wait_until(self._cloud_healthy, timeout=timeout, step=0.2):
            raise AssertionError(f"the cloud did not become healthy\n{self.cloud.log_tail()}")

    def _cloud_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api}/healthz", timeout=2) as reply:
                return bool(json.load(reply).get("mqtt"))
        except (OSError, ValueError):
            return False

    def services(self) -> list[Service]:
        return [self.cloud, *self.workers, self.gateway, *self.agents]

    def log_tails(self) -> str:
        return "\n".join(service.log_tail() for service in self.services())
