"""``edgecascade bench cascade``: accuracy vs bytes uplinked vs latency, edge-only to cloud-only.

The real topology of ``edgecascade demo`` (site and cloud Mosquitto, the cloud service, one
re-inference worker with the cloud model, the gateway) runs once; then one camera agent per
policy replays the same labelled frames through the edge model, one after the other, so each
policy's latencies are measured on an otherwise quiet system and its bytes are its own. The
policies: **edge-only** (never escalates), **cloud-only** (``mode = "always"``: every frame goes
up and the cloud's verdict is the answer) and the cascade at each rule (threshold, margin,
entropy, thresholds on calibrated probabilities, a budget, a cooldown). Cloud-only runs first:
its verdicts on every frame are what the temperature is fitted on (the cloud's own calibration
fit, :mod:`cloud.calibration`), for the calibrated points that follow. What the devices
receive and what the gateway sends up is read off the brokers by
:class:`~edgecascade.benchmarks.cascade_tap.WireTap`; the scoring is in
:mod:`~edgecascade.benchmarks.cascade_score`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecascade.benchmarks.cascade_pairs import ModelPair, frame_subset, resolve_pairs
from edgecascade.benchmarks.cascade_score import (
    PolicyPoint,
    add_ratios,
    fit_temperature_on,
    score,
)
from edgecascade.benchmarks.cascade_table import format_report
from edgecascade.benchmarks.cascade_tap import DeviceTraffic, WireTap, counted_gateway_env
from edgecascade.benchmarks.cascade_targets import judge_targets
from edgecascade.gateway.settings import BatchSettings
from edgecascade.processes import environment
from edgecascade.shared.cli import SubParsers
from edgecascade.shared.errors import EdgeCascadeError

if TYPE_CHECKING:
    from edgecascade.demo import Demo

SITE = "bench"
REPO = Path(__file__).resolve().parents[2]
UNLIMITED = {"budget_per_minute": 1e9, "burst": 1_000_000, "cooldown_s": 0.0}


def add_cascade_parser(benches: SubParsers[argparse.ArgumentParser]) -> None:
    parser = benches.add_parser(
        "cascade",
        help="accuracy vs bytes uplinked vs latency: edge-only, cloud-only, cascade policies",
        description=(
            "Run brokers, cloud, a re-inference worker and the gateway; replay a labelled frame "
            "set through one camera agent per escalation policy (edge-only, cloud-only and the "
            "cascade at each rule); report accuracy after verdicts, fraction escalated, bytes "
            "uplinked as a fraction of cloud-only and latency of the first and final answers."
        ),
    )
    arg = parser.add_argument
    arg(
        "--pair",
        action="append",
        choices=("fashion", "imagenet"),
        help="model pair (repeatable; default: fashion)",
    )
    arg(
        "--frames",
        type=Path,
        metavar="DIR",
        help="labelled image folder <DIR>/<label>/<image> (default: the pair's)",
    )
    arg(
        "--frames-limit",
        type=int,
        metavar="N",
        help="use N frames, taken in turn from each label (default: all)",
    )
    arg(
        "--fps",
        type=float,
        default=200.0,
        help="frames per second each camera replays at (default: 200)",
    )
    arg(
        "--policies",
        metavar="NAMES",
        help="comma-separated policy names to run (edge-only and cloud-only always run); "
        "default: all",
    )
    arg(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds to wait for one policy's answers and bytes (default: 120)",
    )
    compress = BatchSettings.model_fields["compress"].default
    arg(
        "--compress-batches",
        action=argparse.BooleanOptionalAction,
        default=compress,
        help="run the gateway with batch.compress on (result batches go up zlib-compressed) or "
        f"off (plain JSON); default: the gateway's own ({'on' if compress else 'off'})",
    )
    arg(
        "--plot",
        type=Path,
        metavar="FILE",
        help="write accuracy vs bytes as a PNG (needs the bench extra)",
    )
    parser.add_argument("--workdir", type=Path, help="keep logs and data here (default: temp)")
    parser.add_argument("--output", type=Path, metavar="FILE", help="write the figures as JSON")


def default_policies(fps: float) -> list[PolicyPoint]:
    """The grid every run measures; budget and cooldown are on only where named."""

    def rule(name: str, family: str, calibrated: bool = False, **settings: Any) -> PolicyPoint:
        return PolicyPoint(name, family, {**UNLIMITED, **settings}, calibrated)

    return [
        rule("cloud-only", "cloud-only", mode="always"),
        rule("edge-only", "edge-only", mode="max_prob", threshold=0.0),
        *(
            rule(f"threshold-{t:.2f}", "threshold", mode="max_prob", threshold=t)
            for t in (0.6, 0.7, 0.75, 0.8, 0.9)
        ),
        *(rule(f"margin-{m:.2f}", "margin", mode="margin", margin=m) for m in (0.3, 0.5, 0.6, 0.7)),
        *(
            rule(f"entropy-{h:.2f}", "entropy", mode="entropy", entropy=h)
            for h in (0.15, 0.25, 0.3, 0.35)
        ),
        *(
            rule(f"calibrated-{t:.2f}", "calibrated", True, mode="max_prob", threshold=t)
            for t in (0.8, 0.85, 0.9, 0.95)
        ),
        # A budget of 10 % of the frame rate under a rule that would escalate more.
        PolicyPoint(
            "budget-10pct",
            "budget",
            {
                "mode": "max_prob",
                "threshold": 0.9,
                "budget_per_minute": round(0.10 * fps * 60, 3),
                "burst": 10,
                "cooldown_s": 0.0,
            },
        ),
        # Near-duplicates (dHash within 4 bits) of a frame escalated in the last 10 s stay home.
        PolicyPoint(
            "cooldown-10s",
            "cooldown",
            {
                "mode": "max_prob",
                "threshold": 0.9,
                "budget_per_minute": 1e9,
                "burst": 1_000_000,
                "cooldown_s": 10.0,
                "cooldown_distance": 4,
            },
        ),
    ]


def bench_cascade(args: argparse.Namespace) -> dict[str, Any]:
    if args.fps <= 0:
        raise EdgeCascadeError(f"--fps must be positive, got {args.fps}")
    if args.frames_limit is not None and args.frames_limit < 1:
        raise EdgeCascadeError(f"--frames-limit must be at least 1, got {args.frames_limit}")
    points = _select(default_policies(args.fps), args.policies)
    pairs, skipped = resolve_pairs(args.pair or ["fashion"], args.frames)
    for name, reason in skipped.items():
        sys.stderr.write(f"bench cascade: skipping the {name} pair: {reason}\n")
    if not pairs:
        raise EdgeCascadeError("no model pair to measure: " + "; ".join(skipped.values()))
    report: dict[str, Any] = {"fps": args.fps, "pairs": {}, "skipped": skipped}
    tables = []
    with ExitStack() as stack:  # a temporary work directory (~80 MB a run) unless --workdir
        workdir = args.workdir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="edgecascade-cascade-"))
        )
        for pair in pairs:
            frames = frame_subset(pair.frames, args.frames_limit, workdir / pair.name / "frames")
            run = CascadeRun(
                pair,
                frames,
                points,
                args.fps,
                args.timeout,
                workdir / pair.name,
                compress=args.compress_batches,
            )
            measured = run.measure()
            report["pairs"][pair.name] = measured
            tables.append(f"{pair.name} pair\n" + format_report(measured))
    if args.plot is not None:
        from edgecascade.benchmarks.cascade_plot import plot

        plot(report, args.plot)
        tables.append(f"wrote {args.plot}")
    report["table"] = "\n\n".join(tables)
    return report


def _select(points: list[PolicyPoint], names: str | None) -> list[PolicyPoint]:
    if names is None:
        return points
    wanted = {n.strip() for n in names.split(",") if n.strip()}
    known = {p.name for p in points}
    unknown = sorted(wanted - known)
    if unknown:
        raise EdgeCascadeError(f"--policies: unknown {unknown}; known: {sorted(known)}")
    return [p for p in points if p.name in wanted or p.family in ("edge-only", "cloud-only")]


class CascadeRun:
    """The topology for one pair, and one agent per policy through it."""

    def __init__(
        self,
        pair: ModelPair,
        frames: Path,
        points: list[PolicyPoint],
        fps: float,
        timeout: float,
        workdir: Path,
        compress: bool,
    ) -> None:
        self.pair = pair
        self.frames = frames
        self.points = points
        self.fps = fps
        self.timeout = timeout
        self.workdir = workdir.resolve()
        self.temperature: dict[str, Any] | None = None
        self.compress = compress  # the gateway's batch.compress

    def measure(self) -> dict[str, Any]:
        from edgecascade.brokers import MosquittoBroker, free_port
        from edgecascade.demo import Demo, DemoPlan

        plan = DemoPlan(
            devices=1,
            duration=1.0,
            fps=self.fps,
            site=SITE,
            model=self.pair.edge,
            cloud_model=self.pair.cloud,
            frames=self.frames,
            threshold=0.0,
            workdir=self.workdir,
            http_port=free_port(),
        )
        demo = Demo(plan)
        demo.out = sys.stderr
        site_broker = MosquittoBroker(self.workdir / "site-broker")
        cloud_broker = MosquittoBroker(self.workdir / "cloud-broker")
        policies: list[dict[str, Any]] = []
        try:
            site_broker.start()
            cloud_broker.start()
            # The demo's own start-up of cloud, worker and gateway; children inherit the
            # environment, which is how the gateway gets its batch.compress and no replay.
            with environment(counted_gateway_env(self.compress)):
                demo._start_services(site_broker.port, cloud_broker.port)  # waits for the worker
            with WireTap(SITE, site_broker.settings, cloud_broker.settings) as tap:
                for point in self.points:
                    demo._check_services()
                    policies.append(self._run_policy(point, demo, tap, site_broker.port))
        finally:
            demo.group.stop_all()
            site_broker.stop()
            cloud_broker.stop()
        cloud_only = next(p for p in policies if p["family"] == "cloud-only")
        add_ratios(policies, cloud_only)
        return {
            "edge_model": _display(self.pair.edge),
            "cloud_model": _display(self.pair.cloud),
            "frames": cloud_only["frames"],
            "fps": self.fps,
            "gateway_compress": self.compress,
            "temperature_fit": self.temperature,
            "policies": policies,
            "targets": judge_targets(policies, cloud_only),
        }

    def _run_policy(
        self, point: PolicyPoint, demo: Demo, tap: WireTap, port: int
    ) -> dict[str, Any]:
        device = point.name
        data_dir = self.workdir / "agents" / device
        data_dir.mkdir(parents=True, exist_ok=True)
        config = data_dir / "agent.toml"
        # Each policy measured alone: no audit samples on top of what it escalates.
        escalation = {"audit_fraction": 0.0, **point.escalation}
        # Replay off, as for the gateway: each message counted once on the wire.
        settings = {"threads": 1, "outbox_replay_s": 0.0, "escalation": escalation}
        config.write_text(toml_text(settings))
        model = self._calibrated_model() if point.calibrated else self.pair.edge
        sys.stderr.write(f"bench cascade: {self.pair.name} {device} ...\n")
        proc = demo.group.spawn_cli(
            device,
            "agent",
            "--config",
            str(config),
            "--site",
            SITE,
            "--device",
            device,
            "--model",
            str(model),
            "--frames",
            str(self.frames),
            "--fps",
            str(self.fps),
            "--data-dir",
            str(data_dir),
            "--mqtt-port",
            str(port),
        )
        try:
            code = proc.wait(timeout=self.timeout + _expected_seconds(self.frames, self.fps))
        except Exception as exc:
            raise EdgeCascadeError(f"agent {device} did not finish: {exc}") from exc
        if code != 0:
            raise EdgeCascadeError(
                f"agent {device} exited with {code}:\n{demo.group.log_tail(device)}"
            )
        stats: dict[str, int] = json.loads((data_dir / "stats.json").read_text())
        traffic = tap.device(device)
        _wait_for(lambda: _complete(traffic, stats), self.timeout)
        entry = score(point, traffic, stats)
        if point.calibrated and self.temperature is not None:
            entry["temperature"] = self.temperature["temperature"]
        if point.family == "cloud-only":
            self.temperature = fit_temperature_on(traffic, self.pair.edge)
        return entry

    def _calibrated_model(self) -> Path:
        """A copy of the edge model whose card carries the temperature fitted on cloud-only."""
        from edgecascade.shared.runtime.card import card_path_for, load_card_for

        if self.temperature is None:
            raise EdgeCascadeError("calibrated policies need the cloud-only run before them")
        target = self.workdir / "calibrated" / self.pair.edge.name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.pair.edge.read_bytes())
            card = load_card_for(self.pair.edge)
            tempered = card.model_copy(update={"temperature": self.temperature["temperature"]})
            tempered.save(card_path_for(target))
        return target


def _complete(traffic: DeviceTraffic, stats: dict[str, int]) -> bool:
    """Every result seen at the site and uplinked, every escalation answered."""
    escalated = sum(1 for a in traffic.answers.values() if a.escalated)
    answered = sum(
        1 for rid, a in traffic.answers.items() if a.escalated and rid in traffic.verdicts
    )
    return (
        len(traffic.answers) >= stats["results"]
        and traffic.uplinked_results >= stats["results"]
        and answered >= escalated
    )


def _wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            time.sleep(0.5)  # a late duplicate or telemetry roll-up still counts as bytes
            return True
        time.sleep(0.1)
    return bool(predicate())


def _expected_seconds(frames: Path, fps: float) -> float:
    return sum(1 for p in frames.rglob("*") if p.is_file()) / fps


def toml_text(settings: dict[str, Any]) -> str:
    lines = [f"{k} = {json.dumps(v)}" for k, v in settings.items() if not isinstance(v, dict)]
    for section, values in settings.items():
        if isinstance(values, dict):
            lines.append(f"[{section}]")
            lines.extend(f"{k} = {json.dumps(v)}" for k, v in values.items())
    return "\n".join(lines) + "\n"


def _display(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return path.name
