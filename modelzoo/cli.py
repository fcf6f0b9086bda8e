"""``edgecascade models build <name>``: train and export a model pair offline."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from shared.cli import SubParsers

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent


def add_build_parser(models: SubParsers[argparse.ArgumentParser]) -> None:
    parser = models.add_parser(
        "build",
        help="train and export a model pair (needs the train extra)",
        description=(
            "Train the edge and cloud models of a pair on the CPU, export them to LiteRT with "
            "litert-torch, quantize them to int8 with ai-edge-quantizer, measure them on the full "
            "test split and write each .tflite with its model card. fashion: Fashion-MNIST from "
            "the Debian package dataset-fashion-mnist. Needs: pip install "
            "'edgecascade[train]' torch==2.13.0"
        ),
    )
    parser.add_argument("name", choices=["fashion"], help="which pair to build")
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=REPO / "models" / "fashion",
        help="where the .tflite files and cards go (default: models/fashion)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("/usr/share/datasets/fashion-mnist"),
        help="the Fashion-MNIST IDX files (default: %(default)s)",
    )
    parser.add_argument("--epochs-edge", type=int, default=15, help="edge epochs (default: 15)")
    parser.add_argument("--epochs-cloud", type=int, default=20, help="cloud epochs (default: 20)")
    parser.add_argument(
        "--sample-dir",
        type=Path,
        default=REPO / "data" / "fashion-mnist-eval",
        help="where the evaluation sample goes (default: data/fashion-mnist-eval)",
    )
    parser.add_argument(
        "--sample-size",
        type=int,
        default=2000,
        help="test images written as the evaluation sample (default: 2000; 0 skips it)",
    )
    parser.set_defaults(func=run_build)


def run_build(args: argparse.Namespace) -> int:
    from modelzoo import fashion
    from modelzoo.cards import render_markdown

    started = time.monotonic()
    cards = fashion.build(args.output_dir, args.data_dir, args.epochs_edge, args.epochs_cloud)
    files = [f"fashion_{role}_int8.tflite" for role in cards]
    (args.output_dir / "README.md").write_text(
        render_markdown("Fashion-MNIST model pair", list(cards.values()), files)
    )
    if args.sample_size:
        written = fashion.write_sample(args.sample_dir, args.data_dir, args.sample_size)
        logger.info("wrote %d evaluation images to %s", written, args.sample_dir)
    for role, card in cards.items():
        sys.stdout.write(
            f"{role}: {card.name} {card.size_bytes} bytes, accuracy {card.metrics.accuracy} "
            f"(full test split, int8, LiteRT), sha256 {card.sha256[:16]}\n"
        )
    sys.stdout.write(f"built in {time.monotonic() - started:.0f}s\n")
    return 0
