"""``edgecascade models``: build the model zoo and evaluate any TFLite classifier."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgecascade.shared.cli import SubParsers


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    try:
        from edgecascade.models_detect import add_detect_parser
        from edgecascade.models_import import add_import_parser
        from edgecascade.modelzoo.cli import add_build_parser
        from edgecascade.modelzoo.convert_cli import add_convert_parser
        from edgecascade.shared.runtime.evaluate import add_eval_parser
    except ImportError as exc:  # a gateway or admin install: no numpy/LiteRT, no models command
        _add_unavailable(subparsers, exc)
        return

    parser = subparsers.add_parser(
        "models",
        help="build, import and evaluate models",
        description=(
            "Build the model zoo (build), bring your own TFLite classifier with a card written "
            "for it (import), convert a PyTorch classifier to .tflite variants and compare them "
            "(convert), measure any TFLite classifier (eval) and run a detection model on images "
            "(detect)."
        ),
    )
    models = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    add_build_parser(models)
    add_eval_parser(models)
    add_import_parser(models)
    add_convert_parser(models)
    add_detect_parser(models)
    dataset = models.add_parser(
        "dataset",
        help="write a labelled test split as an image folder",
        description=(
            "Write the Fashion-MNIST test split (from the Debian package dataset-fashion-mnist) as "
            "PNG files in ImageFolder layout, for models eval. With --count 10000, models eval "
            "reproduces the accuracy in the model cards."
        ),
    )
    dataset.add_argument("name", choices=["fashion"], help="which data set")
    dataset.add_argument("dest", type=Path, help="folder to write <label>/<index>.png into")
    dataset.add_argument(
        "--count", type=int, default=10_000, help="images, from the first (default: all 10000)"
    )
    dataset.add_argument(
        "--data-dir",
        type=Path,
        default=Path("/usr/share/datasets/fashion-mnist"),
        help="the Fashion-MNIST IDX files (default: %(default)s)",
    )
    dataset.set_defaults(func=write_dataset)


def write_dataset(args: argparse.Namespace) -> int:
    from edgecascade.modelzoo.fashion import write_sample

    written = write_sample(args.dest, args.data_dir, args.count)
    sys.stdout.write(f"wrote {written} images to {args.dest}\n")
    return 0


def _add_unavailable(subparsers: SubParsers[argparse.ArgumentParser], exc: ImportError) -> None:
    """``models`` on an install without the edge extra: says what is missing when used."""
    from edgecascade.shared.errors import EdgeCascadeError

    def unavailable(args: argparse.Namespace) -> int:
        raise EdgeCascadeError(
            f"models needs the edge extra ({exc.name or exc} is not installed): "
            "pip install 'edgecascade[edge]'"
        )

    parser = subparsers.add_parser(
        "models", help="build and evaluate models (needs the edge extra)", add_help=True
    )
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(func=unavailable)
