"""``bench detect`` through the real topology: the agents, the worker and the cloud do the work.

The topology of ``bench cascade`` (site and cloud Mosquitto, the cloud service, a worker, the
gateway: :class:`~edgecascade.demo.Demo`'s start-up) runs once, the worker with the cloud
detector (``worker.detection.model``, sliced inference). Then, policy after policy, one agent
per camera of the generated set replays that camera's folder in sequence order (the folder
source sorts ``0000.jpg``, ``0001.jpg``, ...; the frame id is the file name, which maps each
answer back to its labels) through the edge detector, the cameras of one policy at once:

- **cloud-only**: ``escalation.mode = always``: every frame goes up, the cloud's boxes answer;
- **edge-only**: ``escalation.detection.rules = []``: no rule can make a frame unsure (and no
  audit samples), so nothing goes up;
- **cascade** at each band: rules ``score_band`` ``[low, high)``, ``count`` and ``empty`` (and
  ``fewer_than_cloud`` for a ``+cloud`` band), the
  scene gate on at the band's threshold and measure (the ``empty`` rule needs it) and the edge
  model's score threshold lowered to ``low`` where it is below the card's 0.5 (a copy of the
  model whose card says so), as the offline evaluator simulates them.

Budget and cooldown are unlimited and audit samples off, as in ``bench cascade``. What each
policy cost is read off the wire by :class:`~edgecascade.benchmarks.cascade_tap.WireTap`; what
it answered is read back from the cloud's API (:mod:`.detect_readback`) once every result is
stored and every escalation has its verdict.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecascade.benchmarks.cascade import UNLIMITED, _complete, _wait_for
from edgecascade.benchmarks.cascade_tap import WireTap, counted_gateway_env
from edgecascade.benchmarks.detect_offline import EDGE_THRESHOLD
from edgecascade.processes import environment
from edgecascade.shared.errors import EdgeCascadeError

if TYPE_CHECKING:
    from edgecascade.benchmarks.detect_policies import Band
    from edgecascade.demo import Demo

SITE = "bench"


@dataclass(frozen=True)
class TopologyPolicy:
    """One policy as its agents run it: their ``[escalation]`` and ``[gating]`` settings and
    the edge model's score threshold."""

    name: str
    family: str  # edge-only, cloud-only, cascade
    escalation: dict[str, Any]
    gating: dict[str, Any] = field(default_factory=dict)
    edge_threshold: float = EDGE_THRESHOLD
    band: Band | None = None

    def device(self, camera: str) -> str:
        """The agent's device id: the policy's name where a device id allows it, and the camera."""
        safe = self.name.replace("@", "_gate").replace("+", "_")
        return f"{safe}.{camera}"


def topology_policies(bands: tuple[Band, ...]) -> list[TopologyPolicy]:
    """Cloud-only, edge-only and a cascade per band."""
    quiet = {**UNLIMITED, "audit_fraction": 0.0}
    policies = [
        TopologyPolicy("cloud-only", "cloud-only", {**quiet, "mode": "always"}),
        TopologyPolicy("edge-only", "edge-only", {**quiet, "detection": {"rules": []}}),
    ]
    for band in bands:
        rules = {
            "rules": band.rules,
            "score_low": band.low,
            "score_high": band.high,
            "count_window": band.count_window,
        }
        gating = {"enabled": True, "threshold": band.gate, "measure": band.gate_measure}
        policies.append(
            TopologyPolicy(
                band.name, "cascade", {**quiet, "detection": rules}, gating, band.floor, band
            )
        )
    return policies


def toml_text(settings: dict[str, Any], prefix: str = "") -> str:
    """Settings as TOML, nested tables as ``[a.b]`` sections (values are JSON-compatible)."""
    plain = [f"{k} = {json.dumps(v)}" for k, v in settings.items() if not isinstance(v, dict)]
    lines = ([f"[{prefix}]"] if prefix and plain else []) + plain
    text = "\n".join(lines) + ("\n" if lines else "")
    for key, value in settings.items():
        if isinstance(value, dict):
            text += toml_text(value, f"{prefix}.{key}" if prefix else key)
    return text


class DetectRun:
    """The topology, and every policy's agents through it."""

    def __init__(
        self,
        labels: Path,
        policies: list[TopologyPolicy],
        edge_model: Path,
        cloud_model: Path,
        fps: float,
        timeout: float,
        workdir: Path,
    ) -> None:
        self.labels = labels
        self.document: dict[str, Any] = json.loads(labels.read_text())
        self.cameras = sorted({f["camera"] for f in self.document["frames"]})
        self.policies = policies
        self.edge_model = edge_model
        self.cloud_model = cloud_model
        self.fps = fps
        self.timeout = timeout
        self.workdir = workdir.resolve()

    def measure(self) -> list[dict[str, Any]]:
        """Every policy's figures (ratios to cloud-only not yet added)."""
        from edgecascade.brokers import MosquittoBroker, free_port
        from edgecascade.demo import Demo, DemoPlan
        from edgecascade.demo_models import PAIRS

        fashion = PAIRS["fashion"]  # the worker's classifier; the detector is set apart
        plan = DemoPlan(
            *(1, 1.0, self.fps, SITE, fashion.edge, fashion.cloud, fashion.frames, 0.0),
            *(self.workdir, free_port()),
            candidate_model=None,
        )
        demo = Demo(plan)
        demo.out = sys.stderr
        site_broker = MosquittoBroker(self.workdir / "site-broker")
        cloud_broker = MosquittoBroker(self.workdir / "cloud-broker")
        env = {
            **counted_gateway_env(compress=True),
            "EC_CLOUD_WORKER__DETECTION__MODEL": str(self.cloud_model),
        }
        measured: list[dict[str, Any]] = []
        try:
            site_broker.start()
            cloud_broker.start()
            with environment(env):
                demo._start_services(site_broker.port, cloud_broker.port)
            with WireTap(SITE, site_broker.settings, cloud_broker.settings) as tap:
                for policy in self.policies:
                    demo._check_services()
                    measured.append(self._run_policy(policy, demo, tap, site_broker.port))
        finally:
            demo.group.stop_all()
            site_broker.stop()
            cloud_broker.stop()
        return measured

    def _run_policy(
        self, policy: TopologyPolicy, demo: Demo, tap: WireTap, port: int
    ) -> dict[str, Any]:
        from edgecascade.benchmarks.detect_readback import read_back, score_policy

        model = self._edge_model(policy.edge_threshold)
        devices = {camera: policy.device(camera) for camera in self.cameras}
        sys.stderr.write(f"bench detect: {policy.name}: {len(devices)} cameras ...\n")
        procs = {
            device: self._spawn(policy, camera, device, model, demo, port)
            for camera, device in devices.items()
        }
        frames = max(sum(1 for f in self.document["frames"] if f["camera"] == c) for c in devices)
        for device, proc in procs.items():
            try:
                code = proc.wait(timeout=self.timeout + frames / self.fps)
            except Exception as exc:
                raise EdgeCascadeError(f"agent {device} did not finish: {exc}") from exc
            if code != 0:
                raise EdgeCascadeError(
                    f"agent {device} exited with {code}:\n{demo.group.log_tail(device)}"
                )
        stats = {
            d: json.loads((self.workdir / "agents" / d / "stats.json").read_text())
            for d in devices.values()
        }
        for device in devices.values():
            if not _wait_for(partial(_complete, tap.device(device), stats[device]), self.timeout):
                raise EdgeCascadeError(
                    f"{device}: not every result was uplinked or every escalation answered "
                    f"within {self.timeout:g} s:\n{demo.group.log_tail('worker')}"
                )
        stored = read_back(demo, devices, stats, self.timeout)
        return score_policy(policy, self.document, stored, tap, stats)

    def _spawn(
        self, policy: TopologyPolicy, camera: str, device: str, model: Path, demo: Demo, port: int
    ) -> Any:
        data_dir = self.workdir / "agents" / device
        data_dir.mkdir(parents=True, exist_ok=True)
        config = data_dir / "agent.toml"
        # Replay off, as for the gateway: each message counted once on the wire.
        settings = {"threads": 1, "outbox_replay_s": 0.0, "escalation": policy.escalation}
        if policy.gating:
            settings["gating"] = policy.gating
        config.write_text(toml_text(settings))
        argv = ["agent", "--config", str(config), "--site", SITE, "--device", device]
        argv += ["--model", str(model), "--frames", str(self.labels.parent / camera)]
        argv += ["--fps", str(self.fps), "--data-dir", str(data_dir)]
        return demo.group.spawn_cli(device, *argv, "--mqtt-port", str(port))

    def _edge_model(self, threshold: float) -> Path:
        """The edge model, or a copy whose card's score threshold is ``threshold``."""
        from edgecascade.shared.runtime.card import card_path_for, load_card_for

        card = load_card_for(self.edge_model)
        assert card.detection is not None  # the edge model is a detector
        if threshold == card.detection.score_threshold:
            return self.edge_model
        target = self.workdir / "models" / f"threshold-{threshold:g}" / self.edge_model.name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.edge_model.read_bytes())
            lowered = card.detection.model_copy(update={"score_threshold": threshold})
            card.model_copy(update={"detection": lowered}).save(card_path_for(target))
        return target
