"""``edgecascade models build <name>``: train and export a model pair offline."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from edgecascade.shared.cli import SubParsers
from edgecascade.shared.runtime.card import ModelCard

logger = logging.getLogger(__name__)

# One epoch of the cloud network with drift augmentation took 77 s on two free cores (up to
# 480 s on shared ones): the cloud-robust role builds in 15 to 35 minutes.
ROBUST_EPOCHS = 9

REPO = Path(__file__).resolve().parent.parent


def add_build_parser(models: SubParsers[argparse.ArgumentParser]) -> None:
    parser = models.add_parser(
        "build",
        help="train and export a model pair (needs the train extra)",
        description=(
            "Train the edge and cloud models of a pair on the CPU, export them to LiteRT with "
            "litert-torch, quantize them to int8 with ai-edge-quantizer, measure them on the full "
            "test split and write each .tflite with its model card. fashion: Fashion-MNIST from "
            "the Debian package dataset-fashion-mnist, trained here, written to models/fashion. "
            "imagenet: pretrained EfficientNet-Lite0/Lite2, fp32 and int8, written to the cache "
            "(~/.cache/edgecascade/models/imagenet; models/imagenet holds a copy of its int8 "
            "files), with the demo photos written to data/imagenet-photos. Needs: pip install "
            "'edgecascade[train]' torch==2.13.0. faces: MediaPipe's face detectors copied out of "
            "the mediapipe 0.10.14 wheel (--wheel FILE, else pip download) with their detection "
            "cards, and the short-range one rebuilt in the SSD format (TFLite_Detection_PostProcess"
            " appended, modelzoo/faces_ssd.py), written to models/faces; needs no training stack"
        ),
    )
    parser.add_argument(
        "name", choices=["fashion", "imagenet", "faces"], help="which models to build"
    )
    parser.add_argument(
        "--wheel",
        type=Path,
        help="faces: the mediapipe 0.10.14 wheel to copy the detectors from (default: pip "
        "download it into a temporary folder; offline that fails)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="where the .tflite files and cards go (default: models/<name> for fashion and "
        "faces, "
        "~/.cache/edgecascade/models/imagenet for imagenet)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("/usr/share/datasets/fashion-mnist"),
        help="the Fashion-MNIST IDX files (default: %(default)s)",
    )
    parser.add_argument(
        "--roles",
        nargs="+",
        choices=["edge", "cloud", "cloud-robust"],
        default=["edge", "cloud"],
        help="fashion: which models to (re)build (default: edge and cloud). cloud-robust: the "
        "cloud network trained with drift augmentation (modelzoo/robust.py), written as "
        "fashion_cloud_robust_int8.tflite",
    )
    parser.add_argument(
        "--epochs-edge", type=int, default=15, help="fashion: edge epochs (default: 15)"
    )
    parser.add_argument(
        "--epochs-cloud", type=int, default=20, help="fashion: cloud epochs (default: 20)"
    )
    parser.add_argument(
        "--epochs-robust",
        type=int,
        default=ROBUST_EPOCHS,
        help="fashion: cloud-robust epochs (default: %(default)s)",
    )
    parser.add_argument(
        "--sample-dir",
        type=Path,
        default=REPO / "data" / "fashion-mnist-eval",
        help="fashion: where the evaluation sample goes (default: data/fashion-mnist-eval)",
    )
    parser.add_argument(
        "--sample-size",
        type=int,
        default=2000,
        help="fashion: test images written as the evaluation sample (default: 2000; 0 skips it)",
    )
    parser.add_argument(
        "--photos-dir",
        type=Path,
        default=REPO / "data" / "imagenet-photos",
        help="imagenet: where the demo's photos (JPEG, with their licences) go "
        "(default: data/imagenet-photos)",
    )
    parser.set_defaults(func=run_build)


def run_build(args: argparse.Namespace) -> int:
    started = time.monotonic()
    if args.name == "faces":
        from edgecascade.modelzoo import faces

        output_dir = args.output_dir or REPO / "models" / "faces"
        for stem, card in faces.build(output_dir, args.wheel).items():
            sys.stdout.write(f"{stem}: {card.size_bytes} bytes, sha256 {card.sha256[:16]}\n")
        sys.stdout.write(f"wrote {output_dir}\n")
        return 0
    if args.name == "imagenet":
        from edgecascade.modelzoo import imagenet

        output_dir = args.output_dir or imagenet.cache_dir()
        imagenet.build(output_dir)
        cards, readme = imagenet_readme(output_dir)
        from edgecascade.modelzoo.photos import write_photos

        photos = write_photos(args.photos_dir)
        logger.info("wrote %d photos to %s", len(photos), args.photos_dir)
    else:
        from edgecascade.modelzoo import fashion

        output_dir = args.output_dir or REPO / "models" / "fashion"
        fashion.build(
            output_dir,
            args.data_dir,
            args.epochs_edge,
            args.epochs_cloud,
            tuple(args.roles),
            epochs_robust=args.epochs_robust,
        )
        cards, readme = fashion_readme(output_dir)
        if args.sample_size:
            written = fashion.write_sample(args.sample_dir, args.data_dir, args.sample_size)
            logger.info("wrote %d evaluation images to %s", written, args.sample_dir)
    (output_dir / "README.md").write_text(readme)
    for role, card in cards.items():
        sys.stdout.write(
            f"{role}: {card.name} {card.size_bytes} bytes, {_headline(card)}, "
            f"sha256 {card.sha256[:16]} -> {output_dir}\n"
        )
    sys.stdout.write(f"built in {time.monotonic() - started:.0f}s\n")
    return 0


def fashion_readme(folder: Path) -> tuple[dict[str, ModelCard], str]:
    """The cards of every fashion model in ``folder`` (also those an earlier --roles run built)
    and the README rendered from them."""
    from edgecascade.modelzoo.cards import render_markdown

    cards = {p.stem: ModelCard.load(p) for p in sorted(folder.glob("fashion_*.json"))}
    files = [f"{stem}.tflite" for stem in cards]
    return cards, render_markdown("Fashion-MNIST model pair", list(cards.values()), files)


def imagenet_readme(folder: Path) -> tuple[dict[str, ModelCard], str]:
    """The cards of the imagenet models in ``folder`` and the README rendered from them. The
    committed ``models/imagenet`` holds the build's int8 files and cards, copied; its README is
    this function's output for that folder (a test checks)."""
    from edgecascade.modelzoo.cards import render_markdown

    cards = {p.stem: ModelCard.load(p) for p in sorted(folder.glob("imagenet_*.json"))}
    files = [f"{stem}.tflite" for stem in cards]
    title = "ImageNet model pair (EfficientNet-Lite)"
    readme = render_markdown(title, list(cards.values()), files)
    if not any(stem.endswith("_fp32") for stem in cards):
        readme += (
            "\nThe build writes fp32 and int8 models to ~/.cache/edgecascade/models/imagenet; "
            "this folder holds its int8 files and their cards, copied (the fp32 figures above "
            "were measured by the same build, on its fp32 files).\n"
        )
    return cards, readme


def _headline(card: ModelCard) -> str:
    if card.metrics.accuracy is not None:
        return f"top-1 {card.metrics.accuracy} on {card.metrics.eval_dataset}"
    agreement = (card.metrics.model_extra or {}).get("fp32_int8_top1_agreement")
    return f"fp32/int8 top-1 agreement {agreement}"
