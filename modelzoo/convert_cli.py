"""``edgecascade models convert``: a PyTorch classifier to LiteRT, in every variant, compared.

The arguments are checked here without torch (a bad value is named before anything is loaded);
the conversion itself is :mod:`~edgecascade.modelzoo.convert` (the train extra).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

from edgecascade.shared.cli import SubParsers
from edgecascade.shared.errors import ModelError

BASES = ("float32", "float16", "dynamic-int8", "int8")
PRUNED = tuple(f"pruned-{base}" for base in BASES)
SOURCE_SUFFIXES = {".pt2": "exported program", ".pt": "TorchScript", ".ts": "TorchScript"}


@dataclasses.dataclass(frozen=True)
class ConvertSpec:
    """What to convert, how, and where to: validated arguments."""

    source: Path | None  # an ExportedProgram (.pt2) or TorchScript (.pt) file
    architecture: str | None  # or a registered architecture and its state_dict
    weights: Path | None
    input_shape: tuple[int, int, int] | None  # H, W, C; None: the architecture's or program's
    layout: str  # "nchw" or "nhwc": the module's input layout
    mean: float | list[float]
    std: float | list[float]
    labels: Path | None
    calibration: Path | None
    calibration_count: int
    eval_dir: Path | None
    eval_count: int | None
    variants: tuple[str, ...]
    prune: float | None
    int8_io: bool
    out: Path
    name: str
    version: str
    threads: int
    command: str  # the command line, for the cards


def _floats(text: str, what: str) -> float | list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ModelError(f"{what} {text!r}: give one number or three, comma-separated") from None
    if len(values) not in (1, 3):
        raise ModelError(f"{what} {text!r} has {len(values)} values; give one or three")
    return values[0] if len(values) == 1 else values


def _input_shape(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    try:
        h, w, c = (int(v) for v in text.split(","))
    except ValueError:
        raise ModelError(f"--input-shape {text!r}: give H,W,C, e.g. 224,224,3") from None
    if h < 1 or w < 1 or c not in (1, 3):
        raise ModelError(f"--input-shape {text!r}: H and W must be >= 1 and C 1 or 3")
    return h, w, c


def _variants(text: str | None, prune: float | None) -> tuple[str, ...]:
    if text is None or text == "all":
        return BASES + (("pruned-int8",) if prune is not None else ())
    chosen = tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    unknown = [v for v in chosen if v not in BASES + PRUNED]
    if unknown or not chosen:
        raise ModelError(
            f"--variants {text!r}: unknown {unknown}; choose from {', '.join(BASES + PRUNED)}"
        )
    if prune is None and any(v.startswith("pruned-") for v in chosen):
        raise ModelError(f"--variants {text!r} lists pruned variants: give --prune SPARSITY")
    return chosen


def validate(args: argparse.Namespace, command: str) -> ConvertSpec:
    """The arguments as a :class:`ConvertSpec`; ModelError naming the first bad one."""
    if (args.source is None) == (args.architecture is None):
        raise ModelError("give either a model FILE or --architecture NAME --weights FILE")
    if args.architecture is not None and args.weights is None:
        raise ModelError(f"--architecture {args.architecture} needs --weights FILE (a state_dict)")
    if args.architecture is not None:
        _check_architecture(args)
    if args.source is not None:
        if args.weights is not None:
            raise ModelError("--weights goes with --architecture, not with a model FILE")
        if args.source.suffix not in SOURCE_SUFFIXES:
            raise ModelError(
                f"{args.source}: expected an ExportedProgram (.pt2, torch.export.save) or a "
                "TorchScript file (.pt or .ts, torch.jit.save)"
            )
    _check_paths(args)
    prune = args.prune
    if prune is not None and not 0.0 < prune < 1.0:
        raise ModelError(f"--prune {prune}: the sparsity must be between 0 and 1 (e.g. 0.5)")
    variants = _variants(args.variants, prune)
    static = [v for v in variants if v.removeprefix("pruned-") == "int8"]
    if args.calibration is None and static:
        raise ModelError(
            f"variants {', '.join(static)} need --calibration DIR (images like the ones the "
            "model will see)"
        )
    counts = (("--calibration-count", args.calibration_count), ("--threads", args.threads))
    for flag, value in counts:
        if value < 1:
            raise ModelError(f"{flag} {value}: must be >= 1")
    if args.eval_count is not None and args.eval_count < 1:
        raise ModelError(f"--eval-count {args.eval_count}: must be >= 1")
    name = args.name or (args.source.stem if args.source else args.architecture)
    return ConvertSpec(
        source=args.source,
        architecture=args.architecture,
        weights=args.weights,
        input_shape=_input_shape(args.input_shape),
        layout="nhwc" if args.architecture else args.layout,
        mean=_floats(args.mean, "--mean") if args.mean is not None else 0.0,
        std=_std(args.std),
        labels=args.labels,
        calibration=args.calibration,
        calibration_count=args.calibration_count,
        eval_dir=args.eval,
        eval_count=args.eval_count,
        variants=variants,
        prune=prune,
        int8_io=args.int8_io,
        out=args.out or Path("models") / name,
        name=name,
        version=args.version,
        threads=args.threads,
        command=command,
    )


def _check_paths(args: argparse.Namespace) -> None:
    for path in (args.source, args.weights, args.labels):
        if path is not None and not path.is_file():
            raise ModelError(f"{path}: no such file")
    for path in (args.calibration, args.eval):
        if path is not None and not path.is_dir():
            raise ModelError(f"{path}: not a directory")


def _check_architecture(args: argparse.Namespace) -> None:
    """An architecture takes raw NHWC pixels of its own size and normalises in its graph."""
    from edgecascade.modelzoo.architectures import architecture

    arch = architecture(args.architecture)
    if args.mean is not None or args.std is not None:
        raise ModelError(
            f"--architecture {arch.id} normalises inside its graph (raw 0..255 pixels in): "
            "leave out --mean and --std"
        )
    shape = _input_shape(args.input_shape)
    if shape is not None and shape != arch.input_shape:
        raise ModelError(
            f"--input-shape {args.input_shape}: {arch.id} takes "
            f"{','.join(map(str, arch.input_shape))}"
        )


def _std(text: str | None) -> float | list[float]:
    if text is None:
        return 1.0
    std = _floats(text, "--std")
    if any(v <= 0 for v in (std if isinstance(std, list) else [std])):
        raise ModelError(f"--std {text!r}: every value must be > 0")
    return std


def add_convert_parser(models: SubParsers[argparse.ArgumentParser]) -> None:
    parser = models.add_parser(
        "convert",
        help="convert a PyTorch classifier to .tflite variants and compare them (train extra)",
        description=(
            "Convert a PyTorch classifier to LiteRT with litert-torch and write each variant "
            "with its model card: float32; float16 (fp16 weights) and dynamic-int8 (int8 "
            "weights, float activations) with ai-edge-quantizer; int8 (weights and activations, "
            "calibrated on --calibration images; float input/output unless --int8-io); with "
            "--prune S, the network magnitude-pruned first (global L1 over conv and linear "
            "weights, made permanent) as pruned-<variant>. Prints one table: size, compressed "
            "size, top-1 on --eval, invoke latency p50, top-1 agreement with float32. All files "
            "go to a staging folder and are renamed into --out at the end: on any failure "
            "nothing is written. Needs: pip install 'edgecascade[train]' torch==2.13.0"
        ),
    )
    parser.add_argument(
        "source",
        type=Path,
        nargs="?",
        metavar="FILE",
        help="an ExportedProgram (.pt2, torch.export.save) or TorchScript file (.pt/.ts, "
        "torch.jit.save); or use --architecture and --weights",
    )
    parser.add_argument(
        "--architecture",
        metavar="NAME",
        help="a registered zoo architecture, e.g. fashion-edge-cnn",
    )
    parser.add_argument("--weights", type=Path, metavar="FILE", help="its state_dict (torch.save)")
    parser.add_argument(
        "--input-shape",
        metavar="H,W,C",
        help="the image size the module takes, C 1 (gray) or 3 (RGB) (default: the "
        "architecture's, or the exported program's example input)",
    )
    parser.add_argument(
        "--layout",
        choices=["nchw", "nhwc"],
        default="nchw",
        help="the module's input layout; an --architecture takes nhwc (default: %(default)s)",
    )
    for flag, default, what in (("--mean", "0", "subtracted from"), ("--std", "1", "divides")):
        parser.add_argument(
            flag,
            metavar="V[,V,V]",
            help=f"{what} each 0..255 pixel value before the module, one value or one per "
            f"channel; written into the cards (default: {default}, for a module that takes raw "
            "pixels, as the zoo's architectures do)",
        )
    parser.add_argument(
        "--labels",
        type=Path,
        metavar="FILE",
        help="class names by output index: a text file (one a line) or a model card (.json)",
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        metavar="DIR",
        help="images for int8 calibration (any depth; files with an image suffix, each must "
        "decode)",
    )
    parser.add_argument(
        "--calibration-count",
        type=int,
        default=200,
        help="calibration images used, spread evenly over the sorted files (default: %(default)s)",
    )
    parser.add_argument(
        "--eval", type=Path, metavar="DIR", help="a labelled image folder (<class>/<image>)"
    )
    parser.add_argument(
        "--eval-count",
        type=int,
        help="evaluate this many images, spread evenly over the sorted files (default: all)",
    )
    parser.add_argument(
        "--variants",
        metavar="V[,V]",
        help=f"which to write, from {', '.join(BASES + PRUNED)} (default: all four; with "
        "--prune also pruned-int8)",
    )
    parser.add_argument(
        "--prune", type=float, metavar="S", help="sparsity of the pruned variants, e.g. 0.5"
    )
    parser.add_argument(
        "--int8-io", action="store_true", help="int8 variants take and return int8 tensors"
    )
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="where the files go (default: models/<name>)"
    )
    parser.add_argument("--name", help="model name (default: the file's stem or architecture)")
    parser.add_argument("--version", default="1", help="version for the cards (default: 1)")
    parser.add_argument(
        "--threads", type=int, default=2, help="interpreter threads for latency (default: 2)"
    )
    parser.set_defaults(func=run_convert)


def command_line(args: argparse.Namespace) -> str:
    """The command, with file names only (no machine paths in cards)."""
    parts = ["edgecascade", "models", "convert"]
    if args.source is not None:
        parts.append(args.source.name)
    for key in ("architecture", "weights", "input_shape", "layout", "mean", "std", "labels"):
        parts += _option(key, getattr(args, key))
    for key in ("calibration", "calibration_count", "eval", "eval_count", "variants", "prune"):
        parts += _option(key, getattr(args, key))
    return shlex.join(parts + (["--int8-io"] if args.int8_io else []))


def _option(key: str, value: object) -> list[str]:
    if value is None or (key == "layout" and value == "nchw"):
        return []
    text = value.name if isinstance(value, Path) else str(value)
    return [f"--{key.replace('_', '-')}", text]


def run_convert(args: argparse.Namespace) -> int:
    spec = validate(args, command_line(args))
    from edgecascade.modelzoo.export import require_training_stack

    require_training_stack()
    from edgecascade.modelzoo.convert import convert, format_table

    results = convert(spec)
    sys.stdout.write(format_table(results, spec))
    return 0
