"""``edgecascade bench loop``: a camera scene drifts, the cloud teaches the edge, the edge recovers.

The real topology of ``edgecascade demo`` (site and cloud Mosquitto, the cloud service with its
training trigger and rollout controller, a re-inference worker, the gateway) and N cameras on the
committed fashion edge model, with one escalation policy throughout:

- **A**: the cameras replay frames of the original distribution;
- **B**: their scene drifts (``--drift``, one of :data:`~edgecascade.modelzoo.drift.DRIFTS`; by
  default ``DEFAULT_DRIFT``: flatter, brighter, blurred, noisy, turned a little; seeded).
  They escalate more; the worker answers with the drift-robust cloud model by default (trained
  with augmentation from the same family of shifts), so its verdicts stay right;
- **the loop**: the cloud's ``train.min_new_samples`` trigger queues a training run, the trainer
  (``edgecascade cloud trainer``, started now) fine-tunes the site's model on the verdicts, the
  gates judge the child, and a shipped child goes out through the staged rollout while the
  cameras keep replaying drifted frames. A child the gates refuse makes another round of drifted
  frames, up to ``--max-rounds``;
- **C**: the cameras replay fresh drifted frames on the model the loop gave them;
- **cloud-only**: one more camera sends every drifted frame up, for comparison.

Every phase has frames of its own (:mod:`~edgecascade.benchmarks.loop_frames`); scoring, targets
and the plot are in :mod:`~edgecascade.benchmarks.loop_report`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecascade.benchmarks import loop_report as scoring
from edgecascade.benchmarks.cascade import REPO, UNLIMITED, toml_text
from edgecascade.benchmarks.cascade_tap import WireTap, counted_gateway_env
from edgecascade.processes import environment
from edgecascade.shared.cli import SubParsers
from edgecascade.shared.errors import EdgeCascadeError

if TYPE_CHECKING:
    from edgecascade.benchmarks.cascade_tap import DeviceTraffic
    from edgecascade.benchmarks.loop_frames import PhaseFrames
    from edgecascade.demo import Demo

SITE = "loop"
EDGE_MODEL = REPO / "models" / "fashion" / "fashion_edge_int8.tflite"
ROBUST_CLOUD_MODEL = REPO / "models" / "fashion" / "fashion_cloud_robust_int8.tflite"
FASHION_EVAL = REPO / "data" / "fashion-mnist-eval"  # the first 2,000 test images
# modelzoo.drift.DRIFTS by name (the CLI is built without numpy; a test keeps them equal)
DRIFT_NAMES = ("exposure-lens-mount", "exposure-lens")
FINAL = ("shipped", "succeeded", "rejected", "failed")


def add_loop_parser(benches: SubParsers[argparse.ArgumentParser]) -> None:
    parser = benches.add_parser(
        "loop",
        help="drift, verdicts, a fine-tuned edge model rolled out: does the edge recover?",
        description=(
            "Run the whole topology with the trainer; cameras see the original scene (A), then "
            "a drifted one (B); the cloud's trigger starts a fine-tune on the verdicts, the "
            "gated child is rolled out, and the cameras see fresh drifted frames (C). Reports "
            "edge-only accuracy on held-out frames, escalated fraction, accuracy after verdicts "
            "and uplink bytes per frame per phase, the verdicts the loop used and the rounds. "
            "Needs the train extra (pip install 'edgecascade[train]' torch==2.13.0) and "
            "Debian's dataset-fashion-mnist."
        ),
    )
    arg = parser.add_argument
    arg("--devices", type=int, default=3, help="cameras (default: %(default)s)")
    arg("--fps", type=float, default=25.0, help="frames per second per camera (default: 25)")
    arg("--frames-a", type=int, default=200, help="phase A frames per camera (default: 200)")
    arg("--frames-b", type=int, default=1000, help="phase B frames per camera, per round (1000)")
    arg("--frames-c", type=int, default=500, help="phase C frames per camera (default: 500)")
    arg("--frames-cloud-only", type=int, default=300, help="cloud-only frames (default: 300)")
    arg("--threshold", type=float, default=0.8, help="escalate below this top-1 (default: 0.8)")
    arg("--audit-fraction", type=float, default=0.01, help="audit sample (default: 0.01)")
    arg("--min-new-samples", type=int, default=2000, help="the training trigger (default: 2000)")
    arg("--epochs", type=int, default=20, help="fine-tune epochs (default: %(default)s)")
    arg("--max-rounds", type=int, default=2, help="training rounds at most (default: 2)")
    arg(
        "--drift",
        choices=DRIFT_NAMES,
        default="exposure-lens-mount",
        help="the scene's shift in B and C (modelzoo/drift.py; default: %(default)s)",
    )
    arg("--seed", type=int, default=0, help="frame order and drift (default: %(default)s)")
    arg("--cloud-model", type=Path, default=ROBUST_CLOUD_MODEL, help="the worker's model")
    arg("--data-dir", type=Path, help="Fashion-MNIST IDX files (default: Debian's package's)")
    arg("--timeout", type=float, default=900.0, help="seconds for training and rollout (900)")
    arg("--plot", type=Path, metavar="FILE", help="write the timeline as a PNG (bench extra)")
    arg("--workdir", type=Path, help="keep logs and data here (default: temp)")
    arg("--output", type=Path, metavar="FILE", help="write the figures as JSON")


def bench_loop(args: argparse.Namespace) -> dict[str, Any]:
    from edgecascade.modelzoo.export import require_training_stack

    counts = ("devices", "frames_a", "frames_b", "frames_c", "frames_cloud_only", "epochs")
    for name in (*counts, "max_rounds", "min_new_samples"):
        if getattr(args, name) < 1:
            flag = name.replace("_", "-")
            raise EdgeCascadeError(f"--{flag} must be at least 1, got {getattr(args, name)}")
    if not 0.0 < args.threshold <= 1.0:
        raise EdgeCascadeError(f"--threshold must be in (0, 1], got {args.threshold}")
    if not args.cloud_model.exists():
        raise EdgeCascadeError(f"--cloud-model {args.cloud_model}: no such file")
    require_training_stack()  # the trainer this bench starts fine-tunes with torch
    with ExitStack() as stack:
        workdir = args.workdir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="edgecascade-loop-"))
        )
        report = LoopRun(args, workdir.resolve()).measure()
    if args.plot is not None:
        scoring.plot(report, args.plot)
    report["table"] = scoring.format_table(report) + (f"\nwrote {args.plot}" if args.plot else "")
    return report


class LoopRun:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.cameras = [f"cam{i + 1}" for i in range(args.devices)]
        from edgecascade.benchmarks.loop_frames import FramePlan
        from edgecascade.modelzoo.drift import DRIFTS
        from edgecascade.modelzoo.fashion import DATA_DIR

        self.drift = DRIFTS[args.drift]
        self.frames = FramePlan(
            args.data_dir or DATA_DIR, workdir / "frames", self.cameras, self.drift, args.seed
        )
        self.policy = {"mode": "max_prob", "threshold": args.threshold, **UNLIMITED}
        self.uplink: list[tuple[float, float]] = []  # (time, bytes sent up so far)
        self.phase_starts: list[dict[str, Any]] = []
        self.started = time.time()
        self.stopping = threading.Event()
        self.demo: Demo  # the running topology, once measure() has started it
        self.tap: WireTap
        self.port = 0  # the site broker's
        self.trainer: subprocess.Popen[bytes] | None = None  # this round's

    def cloud_env(self) -> dict[str, str]:
        """The cloud's [train] and [rollout] settings for a run of minutes, not days."""
        return {
            "EC_CLOUD_TRAIN__MIN_NEW_SAMPLES": str(self.args.min_new_samples),
            "EC_CLOUD_TRAIN__CHECK_INTERVAL_S": "2",
            "EC_CLOUD_TRAIN__POLL_S": "1",
            "EC_CLOUD_TRAIN__EPOCHS": str(self.args.epochs),
            "EC_CLOUD_TRAIN__STAGES": json.dumps([34.0, 100.0]),
            "EC_CLOUD_ROLLOUTS__INTERVAL_S": "1",
            # The trainer that started a rollout is stopped once its run ends (one run a round);
            # an offer it had not sent yet is sent again by the cloud after resend_s.
            "EC_CLOUD_ROLLOUTS__RESEND_S": "5",
            "EC_CLOUD_ROLLOUTS__CRITERIA__STAGE_MIN_S": "10",
            "EC_CLOUD_DATA_DIR": str(self.workdir / "cloud"),
        }

    def measure(self) -> dict[str, Any]:
        from edgecascade.brokers import MosquittoBroker, free_port
        from edgecascade.demo import Demo, DemoPlan

        args = self.args
        plan = DemoPlan(
            *(args.devices, 1.0, args.fps, SITE, EDGE_MODEL, args.cloud_model, FASHION_EVAL),
            *(args.threshold, self.workdir, free_port()),
        )
        demo = Demo(plan)
        demo.out = sys.stderr
        site_broker = MosquittoBroker(self.workdir / "site-broker")
        cloud_broker = MosquittoBroker(self.workdir / "cloud-broker")
        try:
            site_broker.start()
            cloud_broker.start()
            # As docs/BENCHMARKS.md measured it: plain JSON batches (the old default), no replay.
            with environment({**self.cloud_env(), **counted_gateway_env(compress=False)}):
                demo._start_services(site_broker.port, cloud_broker.port)
                with WireTap(SITE, site_broker.settings, cloud_broker.settings) as tap:
                    self.demo, self.tap, self.port = demo, tap, site_broker.port
                    threading.Thread(target=self._sample, daemon=True).start()
                    try:
                        return self._phases()
                    finally:
                        self.stopping.set()
        finally:
            demo.group.stop_all()
            site_broker.stop()
            cloud_broker.stop()

    def _phases(self) -> dict[str, Any]:
        windows: dict[str, DeviceTraffic] = {}
        windows["A"] = self._replay(self.frames.take("A", self.args.frames_a, False))
        drifted = self.frames.take("B", self.args.frames_b, True)
        windows["B"] = self._replay(drifted)
        runs = self._loop(drifted)
        windows["C"] = self._replay(self.frames.take("C", self.args.frames_c, True))
        only = self.frames.take("cloud-only", self.args.frames_cloud_only, True, ["cloud-only"])
        windows["cloud-only"] = self._replay(only, {"mode": "always"})
        return self._report(windows, runs)

    def _sample(self) -> None:
        while not self.stopping.wait(1.0):
            traffic = self.tap.snapshot(self.cameras)
            sent = sum(sum(t.uplink_bytes.values()) for t in traffic.values())
            self.uplink.append((time.time(), sent))

    def _spawn(
        self, name: str, folder: Path, policy: dict[str, Any], loop: bool
    ) -> subprocess.Popen[bytes]:
        data_dir = self.workdir / "agents" / name
        data_dir.mkdir(parents=True, exist_ok=True)
        config = data_dir / "agent.toml"
        escalation = {**self.policy, "audit_fraction": self.args.audit_fraction, **policy}
        # A seeded order per camera: the classes interleave as in a real scene.
        source = {"shuffle_seed": self.args.seed * 1000 + len(name) + sum(map(ord, name))}
        # No replay: the tap counts each message once (outbox_replay_s defaults to 90 s).
        settings = {"threads": 1, "outbox_replay_s": 0.0, "source": source}
        config.write_text(toml_text({**settings, "escalation": escalation}))
        argv = ["agent", "--config", str(config), "--site", SITE, "--device", name]
        argv += ["--model", str(EDGE_MODEL), "--frames", str(folder), "--fps", str(self.args.fps)]
        argv += ["--data-dir", str(data_dir), "--mqtt-port", str(self.port)]
        return self.demo.group.spawn_cli(
            name,
            *argv,
            *(["--loop"] if loop else []),
            env={"EC_AGENT_MODEL_PUBLIC_KEY": str(self.demo.public_key)},
        )

    def _replay(self, frames: PhaseFrames, policy: dict[str, Any] | None = None) -> DeviceTraffic:
        """Every camera replays its folder of the phase once; the phase's traffic."""
        names = list(frames.folders)
        before, since = self.tap.snapshot(names), time.time()
        self._mark(frames.name)
        self.demo.say(f"bench loop: phase {frames.name}: {len(names)} x {frames.per_device} frames")
        procs = {n: self._spawn(n, f, policy or {}, False) for n, f in frames.folders.items()}
        limit = frames.per_device / self.args.fps + 120
        for name, proc in procs.items():
            try:
                code = proc.wait(timeout=limit)
            except subprocess.TimeoutExpired as exc:
                raise EdgeCascadeError(f"{name} did not finish phase {frames.name}") from exc
            if code != 0:
                raise EdgeCascadeError(
                    f"{name} exited with {code}:\n{self.demo.group.log_tail(name)}"
                )
        results = sum(self._stats(n).get("results", 0) for n in names)
        return self._settle(names, (before, since), results, frames.name)

    def _settle(
        self,
        names: list[str],
        start: tuple[dict[str, DeviceTraffic], float],
        results: int,
        phase: str,
    ) -> DeviceTraffic:
        """The phase's traffic once every result is uplinked and every escalation answered."""
        deadline = time.monotonic() + 120
        while True:
            traffic = scoring.window(start[0], self.tap.snapshot(names), start[1])
            escalated = [rid for rid, a in traffic.answers.items() if a.escalated]
            if (
                len(traffic.answers) >= results
                and traffic.uplinked_results >= results
                and all(rid in traffic.verdicts for rid in escalated)
            ):
                time.sleep(1.0)  # a late duplicate or roll-up still counts as bytes
                return scoring.window(start[0], self.tap.snapshot(names), start[1])
            if time.monotonic() > deadline:
                raise EdgeCascadeError(
                    f"phase {phase}: {len(traffic.answers)}/{results} results seen, "
                    f"{traffic.uplinked_results} uplinked, "
                    f"{sum(r in traffic.verdicts for r in escalated)}/{len(escalated)} answered"
                )
            time.sleep(0.2)

    def _stats(self, name: str) -> dict[str, int]:
        path = self.workdir / "agents" / name / "stats.json"
        return dict(json.loads(path.read_text())) if path.exists() else {}

    def _mark(self, phase: str) -> None:
        self.phase_starts.append({"phase": phase, "t": round(time.time() - self.started, 1)})

    # -- the loop ---------------------------------------------------------------------------------
    def _loop(self, drifted: PhaseFrames) -> list[dict[str, Any]]:
        """Training rounds until a child is rolled out to every camera (or rounds run out).
        The trainer runs one run a round: runs the trigger queues meanwhile wait for the next."""
        runs: list[dict[str, Any]] = []
        for round_ in range(1, self.args.max_rounds + 1):
            self._mark(f"loop {round_}")
            self.trainer = self.demo.group.spawn_cli("trainer", "cloud", "trainer")
            seen = {r["id"] for r in runs}
            run = self._await_run(("running", *FINAL), exclude=seen)
            self.demo.say(f"bench loop: round {round_}: training run {run['id']} started")
            # The cameras keep seeing the drifted scene while the trainer works and the rollout
            # widens (the rollout's gates judge the child on their traffic).
            live = {n: self._spawn(n, f, {}, True) for n, f in drifted.folders.items()}
            try:
                run = self._await_run(FINAL, run_id=run["id"])
                self.demo.group.stop(self.trainer)
                self.trainer = None  # stopped on purpose
                if run["state"] == "shipped":
                    run["rollout"] = self._await_rollout(run["rollout_id"])
            finally:
                for proc in [*live.values(), *([self.trainer] if self.trainer else [])]:
                    self.demo.group.stop(proc)
                self.trainer = None
            runs.append(run)
            self.demo.say(
                f"bench loop: round {round_}: {run['state']} on {run['dataset_size']} verdicts: "
                f"{run['reason']}; rollout {run.get('rollout', {}).get('state', '-')}"
            )
            if run.get("rollout", {}).get("state") == "completed":
                break
            if round_ < self.args.max_rounds:
                self._replay(self.frames.take(f"B{round_ + 1}", self.args.frames_b, True))
        return runs

    def _await_run(
        self, states: tuple[str, ...], run_id: str | None = None, exclude: set[str] | None = None
    ) -> dict[str, Any]:
        """The oldest training run of the site in one of ``states`` (the run ``run_id``, or any
        not in ``exclude``), once there is one."""
        deadline = time.monotonic() + self.args.timeout
        while time.monotonic() < deadline:
            self._check()
            items = self.demo._get(f"/api/training/runs?site={SITE}")["items"]
            found = [
                r
                for r in reversed(items)
                if r["state"] in states
                and (r["id"] == run_id if run_id else r["id"] not in (exclude or set()))
            ]
            if found:
                return dict(found[0])
            time.sleep(1.0)
        verdicts = self.demo._count(f"/api/results?limit=1&site={SITE}&escalated=true")
        raise EdgeCascadeError(
            f"the training run did not get there within {self.args.timeout:g} s "
            f"(train.min_new_samples {self.args.min_new_samples}; escalated results stored: "
            f"{verdicts}):\n{self.demo.group.log_tail('trainer')}"
        )

    def _await_rollout(self, rollout_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.args.timeout
        while time.monotonic() < deadline:
            self._check()
            rollout: dict[str, Any] = self.demo._get(f"/api/rollouts/{rollout_id}")
            if rollout["state"] in ("completed", "rolled_back"):
                return {k: rollout[k] for k in ("id", "state", "stage", "stages", "reason")}
            time.sleep(1.0)
        raise EdgeCascadeError(f"rollout {rollout_id} did not end within {self.args.timeout:g} s")

    def _check(self) -> None:
        self.demo._check_services()
        if self.trainer is not None and self.trainer.poll() is not None:
            tail = self.demo.group.log_tail("trainer")
            raise EdgeCascadeError(f"the trainer exited with {self.trainer.returncode}:\n{tail}")

    # -- the report -------------------------------------------------------------------------------
    def _report(
        self, windows: dict[str, DeviceTraffic], runs: list[dict[str, Any]]
    ) -> dict[str, Any]:
        drifted_eval = self.frames.drifted_eval()
        child = scoring.running_model(self.workdir / "agents" / "cam1", EDGE_MODEL)
        accuracy = {
            m: scoring.edge_only(m, FASHION_EVAL, drifted_eval)
            for m in {EDGE_MODEL, child, self.args.cloud_model}
        }
        phases = {}
        for key, traffic in windows.items():
            model = EDGE_MODEL if key in ("A", "B") else child
            phases[key] = scoring.score_phase(key, traffic, self.policy, accuracy[model])
        summary = scoring.summarise(phases, runs)
        c, cloud = phases["C"], phases["cloud-only"]
        snapshot = self.tap.snapshot(self.cameras)  # the timeline: the site's cameras only
        return {
            **summary,
            "targets": scoring.judge(summary),
            "phases": phases,
            "training_runs": [scoring.run_entry(r) for r in runs],
            "after_loop_vs_cloud_only": {
                "accuracy_vs_cloud_points": 100
                * (c["accuracy_after_verdicts"] - cloud["accuracy_after_verdicts"]),
                "bytes_ratio": c["uplink_bytes_per_frame"] / cloud["uplink_bytes_per_frame"],
            },
            "cloud_model": scoring.display(self.args.cloud_model),
            "cloud_model_accuracy": accuracy[self.args.cloud_model],
            "edge_model": scoring.display(EDGE_MODEL),
            "drift": {"name": self.args.drift, **self.drift.model_dump()},
            "settings": {
                k: scoring.display(v) if isinstance(v, Path) else v
                for k, v in vars(self.args).items()
                if k not in ("func", "output", "plot", "workdir")
            },
            "timeline": scoring.timeline(snapshot, self.uplink, self.started),
            "phase_starts": self.phase_starts,
        }
