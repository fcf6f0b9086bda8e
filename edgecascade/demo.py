"""``edgecascade demo``: the whole topology on one machine.

Two private Mosquitto brokers (site and cloud), the cloud service, a gateway and N simulated cameras
replaying a committed labelled folder through a committed edge model (``--pair``: Fashion-MNIST, or
real photographs with the ImageNet pair). Prints a progress line while it runs and a summary at the
end; Ctrl-C stops every child cleanly.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecascade.demo_models import PAIRS, register_models
from edgecascade.shared.errors import EdgeCascadeError

if TYPE_CHECKING:
    from edgecascade.brokers import MosquittoBroker

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoPlan:
    devices: int
    duration: float
    fps: float
    site: str
    model: Path
    cloud_model: Path
    frames: Path
    threshold: float
    workdir: Path
    http_port: int
    candidate_model: Path | None = PAIRS["fashion"].candidate

    @property
    def frames_per_device(self) -> int:
        return max(1, int(self.duration * self.fps))


class Demo:
    def __init__(self, plan: DemoPlan) -> None:
        from edgecascade.processes import ProcessGroup

        self.plan = plan
        self.api = f"http://127.0.0.1:{plan.http_port}"
        self.group = ProcessGroup(plan.workdir / "logs")
        self.out = sys.stdout
        self.token = ""  # a viewer token, once the cloud is up
        self.admin_token = ""
        self.public_key = Path()  # verifies the models the cloud signs
        self.brokers: list[MosquittoBroker] = []
        self.site_port = 0
        self.started = time.monotonic()  # reset when the topology starts

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def run(self) -> int:
        try:
            agents = self.start()
            self._watch(agents)
            summary = self._finish(agents)
        except KeyboardInterrupt:
            self.say("\ninterrupted: stopping every process")
            return 130
        finally:
            self.stop()
        self._print_summary(summary)
        self.say(f"logs and data: {self.plan.workdir}")
        return 0 if summary["stored"] == summary["results"] else 1

    def start(self) -> list[str]:
        """Brokers, cloud, worker, gateway and cameras, running; returns the cameras' names.
        (The dashboard's browser tests run the topology this way.) Call :meth:`stop` after."""
        from edgecascade.brokers import MosquittoBroker

        plan = self.plan
        self.started = time.monotonic()
        site_broker = MosquittoBroker(plan.workdir / "site-broker")
        cloud_broker = MosquittoBroker(plan.workdir / "cloud-broker")
        self.brokers = [site_broker, cloud_broker]
        site_broker.start()
        cloud_broker.start()
        self.say(f"brokers: site 127.0.0.1:{site_broker.port}, cloud 127.0.0.1:{cloud_broker.port}")
        self._start_services(site_broker.port, cloud_broker.port)
        self.say(f"cloud API: {self.api}/api/results  (OpenAPI docs: {self.api}/docs)")
        self.say(f"dashboard: {self.api}/dashboard/  (log in with a token below)")
        self.say(f"viewer token: {self.token}  (Authorization: Bearer <token>)")
        self.say(f"admin token: {self.admin_token}  (uploads models, starts rollouts)")
        return self._start_agents(site_broker.port)

    def stop(self) -> None:
        """Every child process, then the brokers."""
        self.group.stop_all()
        for broker in reversed(self.brokers):
            broker.stop()
        self.brokers = []

    def _start_services(self, site_port: int, cloud_port: int) -> None:
        plan = self.plan
        self.public_key = self._signing_key()
        self.group.spawn_cli(
            "cloud",
            "cloud",
            "--port",
            str(plan.http_port),
            "--data-dir",
            str(plan.workdir / "cloud"),
            "--mqtt-port",
            str(cloud_port),
        )
        self._wait_http("/healthz", 60)  # the database is migrated once this answers
        self.token = self.create_token("demo", "viewer")
        self.admin_token = self.create_token("demo-admin", "admin")
        register_models(self.api, self.admin_token, plan.model, plan.candidate_model, self.say)
        self.group.spawn_cli(
            "worker",
            "cloud",
            "worker",
            "--data-dir",
            str(plan.workdir / "cloud"),
            "--mqtt-port",
            str(cloud_port),
            "--model",
            str(plan.cloud_model),
        )
        # The worker's shared subscription exists once it has connected: an escalation sent
        # before that would reach no worker and never get a verdict.
        self.group.wait_logged(["worker"], "connected to", 60)
        self.group.spawn_cli(
            "gateway",
            "gateway",
            "--site",
            plan.site,
            "--data-dir",
            str(plan.workdir / "gateway"),
            "--site-mqtt-port",
            str(site_port),
            "--cloud-mqtt-port",
            str(cloud_port),
            "--telemetry-window",
            "5",
            "--model-public-key",
            str(self.public_key),
        )

    def _start_agents(self, site_port: int) -> list[str]:
        plan = self.plan
        self.site_port = site_port
        names = [f"cam{i + 1}" for i in range(plan.devices)]
        for name in names:
            self.group.spawn_cli(
                name,
                *self._agent_args(name, plan.frames_per_device),
                env={"EC_AGENT_MODEL_PUBLIC_KEY": str(self.public_key)},
            )
        self.say(
            f"started {plan.devices} camera(s) at {plan.fps:g} fps for {plan.duration:g}s "
            f"({plan.frames_per_device} frames each)"
        )
        return names

    def _agent_args(self, name: str, max_frames: int) -> list[str]:
        """``edgecascade agent`` arguments of camera ``name``, to make ``max_frames`` frames."""
        plan = self.plan
        return [
            "agent",
            "--site",
            plan.site,
            "--device",
            name,
            "--model",
            str(plan.model),
            "--frames",
            str(plan.frames),
            "--fps",
            str(plan.fps),
            "--loop",
            "--max-frames",
            str(max_frames),
            "--threshold",
            str(plan.threshold),
            "--data-dir",
            str(plan.workdir / "agents" / name),
            "--mqtt-port",
            str(self.site_port),
        ]

    def _watch(self, agents: list[str]) -> None:
        reported: set[int] = set()
        running, last_line = agents, time.monotonic()
        while running or self._busy():
            time.sleep(0.25)
            self._tick()
            if time.monotonic() - last_line < 2.0:
                continue
            last_line = time.monotonic()
            for name in agents:
                proc = self.group.process(name)
                if proc.poll() not in (None, 0) and proc.pid not in reported:
                    reported.add(proc.pid)
                    self._agent_failed(name, proc.returncode)
            self._check_services()
            running = [name for name in agents if self._running(name)]
            stored = self._count("/api/results?limit=1")
            self.say(
                f"[{time.monotonic() - self.started:5.1f}s] cameras running {len(running)}/"
                f"{len(agents)}, results stored {stored}"
            )

    def _tick(self) -> None:
        """Called about four times a second while the cameras run (the chaos plan's clock)."""

    def _running(self, agent: str) -> bool:
        return self.group.process(agent).poll() is None

    def _busy(self) -> bool:
        """Something other than the cameras keeps the demo running (the chaos plan)."""
        return False

    def _agent_failed(self, name: str, code: int) -> None:
        self.say(f"{name} exited with {code}:\n{self.group.log_tail(name)}")

    def _check_services(self) -> None:
        for name, proc in self.group.children:
            if name in ("cloud", "worker", "gateway") and proc.poll() is not None:
                raise EdgeCascadeError(
                    f"{name} exited with {proc.returncode}:\n{self.group.log_tail(name)}"
                )

    def _finish(self, agents: list[str]) -> dict[str, int]:
        from edgecascade.demo_chaos import accepted

        stats = [self._agent_stats(name) for name in agents]
        # What the cameras' outboxes accepted: their stats count only their last run.
        results = sum(accepted(self.plan.workdir / "agents" / n / "outbox.db") for n in agents)
        deadline = time.monotonic() + 60
        stored = self._count("/api/results?limit=1")
        while stored < results and time.monotonic() < deadline:
            time.sleep(0.5)
            stored = self._count("/api/results?limit=1")
        return {
            "devices": len(agents),
            "frames": sum(s.get("frames", 0) for s in stats),
            "results": results,
            "stored": stored,
            "escalations": sum(s.get("escalations", 0) for s in stats),
            "escalated results stored": self._count("/api/results?limit=1&escalated=true"),
            "audit samples": sum(s.get("audits", 0) for s in stats),
            "verdicts at the cameras": sum(s.get("verdicts", 0) for s in stats),
            "corrected by the cloud": sum(s.get("corrected", 0) for s in stats),
            "over budget": sum(s.get("over_budget", 0) for s in stats),
            "skipped frames": sum(s.get("skipped", 0) for s in stats),
            "dropped": sum(s.get("dropped", 0) for s in stats),
        }

    def _agent_stats(self, name: str) -> dict[str, int]:
        path = self.plan.workdir / "agents" / name / "stats.json"
        if not path.exists():
            return {}
        data: dict[str, int] = json.loads(path.read_text())
        return data

    def _print_summary(self, summary: dict[str, int]) -> None:
        self.say("\nsummary")
        width = max(len(k) for k in summary)
        for key, value in summary.items():
            self.say(f"  {key:<{width}}  {value}")
        verdict = (
            "every result stored"
            if summary["stored"] == summary["results"]
            else (f"MISSING {summary['results'] - summary['stored']} result(s)")
        )
        self.say(f"  -> {verdict}")

    def _cloud_cli(self, *args: str) -> str:
        """``edgecascade cloud <args>`` on the demo's data directory; its stdout."""
        argv = [
            sys.executable,
            "-m",
            "edgecascade",
            "cloud",
            *args,
            "--data-dir",
            str(self.plan.workdir / "cloud"),
        ]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise EdgeCascadeError(f"edgecascade cloud {args[0]} failed: {done.stderr.strip()}")
        return done.stdout

    def create_token(self, name: str, role: str) -> str:
        """An API token, made the way an operator makes one: the CLI."""
        return self._cloud_cli("token", "create", "--name", name, "--role", role).strip()

    def _signing_key(self) -> Path:
        """The cloud's manifest signing key pair; the public half goes to gateway and cameras.
        A work directory used before keeps its pair."""
        public = self.plan.workdir / "cloud" / "keys" / "manifest-signing.pub"
        if public.exists():
            return public
        return Path(self._cloud_cli("keys", "generate").splitlines()[0])

    def _get(self, path: str) -> Any:
        request = urllib.request.Request(
            self.api + path, headers={"Authorization": f"Bearer {self.token}"} if self.token else {}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def _count(self, path: str) -> int:
        try:
            total: int = self._get(path)["total"]
        except (urllib.error.URLError, OSError, KeyError, ValueError):
            return -1
        return total

    def _wait_http(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_services()
            try:
                self._get(path)
                return
            except (urllib.error.URLError, OSError, ValueError):
                time.sleep(0.3)
        raise EdgeCascadeError(
            f"cloud API did not answer on {self.api}{path} within {timeout:.0f}s"
        )
