"""``models convert`` argument checks, without torch: each bad value is named before anything
is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecascade.cli import build_parser
from edgecascade.modelzoo.convert_cli import ConvertSpec, command_line, validate
from edgecascade.shared.errors import ModelError
from tests.utils.paths import EVAL_SAMPLE, REPO

WEIGHTS = REPO / "models" / "fashion" / "fashion_edge.pt"
ARCH = ["--architecture", "fashion-edge-cnn", "--weights", str(WEIGHTS)]


def spec_of(*argv: str) -> ConvertSpec:
    args = build_parser().parse_args(["models", "convert", *argv])
    return validate(args, command_line(args))


def test_defaults_for_an_architecture() -> None:
    spec = spec_of(*ARCH, "--calibration", str(EVAL_SAMPLE), "--prune", "0.5")
    assert spec.variants == ("float32", "float16", "dynamic-int8", "int8", "pruned-int8")
    assert (spec.layout, spec.mean, spec.std) == ("nhwc", 0.0, 1.0)
    assert spec.out == Path("models") / "fashion-edge-cnn"
    assert "fashion_edge.pt" in spec.command and str(REPO) not in spec.command


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "either a model FILE or --architecture"),
        (["--architecture", "fashion-edge-cnn"], "needs --weights"),
        (["--architecture", "nope", "--weights", str(WEIGHTS)], "unknown architecture 'nope'"),
        ([*ARCH, "--mean", "127.5"], "normalises inside its graph"),
        ([*ARCH, "--input-shape", "32,32,1"], "takes 28,28,1"),
        ([*ARCH, "--variants", "float32,int4"], r"unknown \['int4'\]"),
        ([*ARCH, "--variants", "pruned-float32"], "give --prune"),
        ([*ARCH, "--variants", "float32", "--prune", "1.5"], "between 0 and 1"),
        ([*ARCH, "--variants", "float32,int8"], "int8 need --calibration"),
        ([*ARCH, "--variants", "float32", "--eval", "/no/such/dir"], "not a directory"),
        ([str(WEIGHTS.with_suffix(".onnx"))], "expected an ExportedProgram"),
        (["missing.pt2"], "missing.pt2: no such file"),
    ],
)
def test_bad_arguments_are_named(argv: list[str], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        spec_of(*argv)


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--std", "0", "must be > 0"),
        ("--mean", "1,2", "has 2 values"),
        ("--mean", "a", "give one number or three"),
        ("--input-shape", "28,28", "give H,W,C"),
        ("--input-shape", "28,28,4", "C 1 or 3"),
    ],
)
def test_bad_numbers_are_named(tmp_path: Path, flag: str, value: str, message: str) -> None:
    source = tmp_path / "net.pt2"
    source.write_bytes(b"")
    with pytest.raises(ModelError, match=message):
        spec_of(str(source), "--variants", "float32", flag, value)
