"""``edgecascade bench <name>``: benchmarks that print a table and, with ``--output``, write JSON.

Figures compared with a baseline measured in the same run are written under keys ending in
``_ratio``; absolute times on small machines are noisy, ratios from one run are what count.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecascade.shared.cli import SubParsers

BenchFn = Callable[[argparse.Namespace], dict[str, Any]]


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="run a benchmark",
        description="Run a benchmark; prints a table and writes JSON with --output.",
    )
    benches = parser.add_subparsers(dest="bench", required=True, metavar="BENCH")
    codec = benches.add_parser(
        "codec",
        help="escalation payload: binary frame codec vs base64-in-JSON",
        description=(
            "Encode and decode real escalation frames (the evaluation sample, at several sizes) "
            "with the binary frame codec and with base64 inside JSON; report bytes and times."
        ),
    )
    codec.add_argument("--frames", type=Path, help="image folder (default: the eval sample)")
    codec.add_argument("--count", type=int, default=200, help="frames per size (default: 200)")
    codec.add_argument("--output", type=Path, metavar="FILE", help="write the figures as JSON")
    codec.set_defaults(func=_runner("codec"))
    from edgecascade.benchmarks.cascade import add_cascade_parser

    add_cascade_parser(benches)
    benches.choices["cascade"].set_defaults(func=_runner("cascade"))
    from edgecascade.benchmarks.detect import add_detect_parser

    add_detect_parser(benches)
    benches.choices["detect"].set_defaults(func=_runner("detect"))
    from edgecascade.benchmarks.edge import add_edge_parser

    add_edge_parser(benches)
    benches.choices["edge"].set_defaults(func=_runner("edge"))
    from edgecascade.benchmarks.gateway import add_gateway_parser

    add_gateway_parser(benches)
    benches.choices["gateway"].set_defaults(func=_runner("gateway"))
    from edgecascade.benchmarks.cloud import add_cloud_parser

    add_cloud_parser(benches)
    benches.choices["cloud"].set_defaults(func=_runner("cloud"))
    from edgecascade.benchmarks.load import add_load_parser

    add_load_parser(benches)
    benches.choices["load"].set_defaults(func=_runner("load"))
    from edgecascade.benchmarks.loop import add_loop_parser

    add_loop_parser(benches)
    benches.choices["loop"].set_defaults(func=_runner("loop"))
    from edgecascade.benchmarks.outbox import add_outbox_parser

    add_outbox_parser(benches)
    benches.choices["outbox"].set_defaults(func=_runner("outbox"))
    from edgecascade.benchmarks.soak import add_soak_parser

    add_soak_parser(benches)
    benches.choices["soak"].set_defaults(func=_runner("soak"))


def _runner(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from edgecascade.benchmarks import REGISTRY

        bench: BenchFn = REGISTRY[name]
        report = bench(args)
        sys.stdout.write(report.pop("table") + "\n")
        if args.output is not None:
            args.output.write_text(json.dumps(report, indent=2) + "\n")
            sys.stdout.write(f"wrote {args.output}\n")
        return 0

    return run
