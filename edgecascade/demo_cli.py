"""``edgecascade demo``'s command line: its options, checked, become a :class:`DemoPlan`."""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

from edgecascade.demo import Demo, DemoPlan
from edgecascade.demo_models import PAIRS
from edgecascade.shared.cli import SubParsers
from edgecascade.shared.errors import EdgeCascadeError


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run brokers, cloud, gateway and simulated cameras on this machine",
        description=(
            "Start a site broker and a cloud broker (Mosquitto, on free ports), the cloud "
            "service, a re-inference worker, a gateway and N camera agents that replay a labelled "
            "image folder through the edge model. Prints the dashboard's URL and tokens to log in "
            "with, runs for --duration seconds, waits until every result is stored, prints a "
            "summary and stops everything."
        ),
    )
    parser.add_argument("--devices", type=int, default=3, help="simulated cameras (default: 3)")
    parser.add_argument(
        "--duration", type=float, default=20.0, help="seconds each camera runs (default: 20)"
    )
    parser.add_argument(
        "--fps", type=float, default=5.0, help="frames per second per camera (default: 5)"
    )
    parser.add_argument("--site", default="site1", help="site id (default: site1)")
    parser.add_argument(
        "--pair",
        choices=sorted(PAIRS),
        default="fashion",
        help="the committed models and frames: fashion (models/fashion on the Fashion-MNIST "
        "sample data/fashion-mnist-eval) or imagenet (EfficientNet-Lite0 int8 at the cameras, "
        "Lite2 int8 in the worker, models/imagenet, on the photographs in data/imagenet-photos; "
        "ImageNet labels) (default: fashion)",
    )
    parser.add_argument("--model", type=Path, help="edge .tflite model (default: the pair's)")
    parser.add_argument(
        "--cloud-model",
        type=Path,
        help="the re-inference worker's .tflite model (default: the pair's)",
    )
    parser.add_argument(
        "--frames", type=Path, help="image folder the cameras replay (default: the pair's)"
    )
    parser.add_argument(
        "--threshold", type=float, default=0.6, help="escalate below this top-1 probability"
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep brokers' data, databases and logs here (default: temp)"
    )
    parser.add_argument("--http-port", type=int, help="cloud API port (default: a free port)")
    parser.add_argument(
        "--chaos",
        action="store_true",
        help="while the cameras run, SIGKILL and restart each part in turn (site and cloud "
        "broker, gateway, cloud, worker, one camera), as a crash and a supervisor would; a "
        "supervisor also restarts any service that dies on its own. The closing check is the "
        "same: every result a camera accepted is stored, once. Give it --duration 60 or more",
    )
    parser.add_argument(
        "--chaos-seed", type=int, help="seed of the fault plan, to replay one (default: random)"
    )
    parser.add_argument("--chaos-rounds", type=int, default=1, help="faults per part (default: 1)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgecascade.brokers import free_port

    if args.devices < 1:
        raise EdgeCascadeError(f"--devices must be at least 1, got {args.devices}")
    if args.duration <= 0 or args.fps <= 0:
        raise EdgeCascadeError("--duration and --fps must be positive")
    if args.chaos_rounds < 1:
        raise EdgeCascadeError(f"--chaos-rounds must be at least 1, got {args.chaos_rounds}")
    pair = PAIRS[args.pair]
    model = args.model or pair.edge
    cloud_model = args.cloud_model or pair.cloud
    frames = args.frames or pair.frames
    checks = ((model, "model"), (cloud_model, "cloud model"), (frames, "frame folder"))
    for path, what in checks:
        if not path.exists():
            raise EdgeCascadeError(f"{what} {path} does not exist")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="edgecascade-demo-"))
    plan = DemoPlan(
        devices=args.devices,
        duration=args.duration,
        fps=args.fps,
        site=args.site,
        model=model.resolve(),
        cloud_model=cloud_model.resolve(),
        frames=frames.resolve(),
        threshold=args.threshold,
        workdir=workdir.resolve(),
        http_port=args.http_port or free_port(),
        candidate_model=pair.candidate,
    )
    if not args.chaos:
        return Demo(plan).run()
    from edgecascade.demo_chaos import ChaosDemo

    seed = args.chaos_seed if args.chaos_seed is not None else random.randrange(1 << 31)
    return ChaosDemo(plan, seed, args.chaos_rounds).run()
