"""``edgecascade models convert`` with torch: the committed edge weights to every variant,
measured side by side; a bad calibration image and an unconvertible operator are named, and
nothing is written on failure."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_quantizer")

from edgecascade.cli import main  # noqa: E402
from edgecascade.shared.runtime.card import ModelCard  # noqa: E402
from edgecascade.shared.runtime.runtime import ModelRuntime  # noqa: E402
from tests.utils.paths import EVAL_SAMPLE, REPO  # noqa: E402

pytestmark = [
    # the converters' own deprecations, not ours
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

FASHION = REPO / "models" / "fashion"
ARCH = ["--architecture", "fashion-edge-cnn", "--weights", str(FASHION / "fashion_edge.pt")]
LABELS = ["--labels", str(FASHION / "fashion_edge_fp32.json")]
VARIANTS = ("float32", "float16", "dynamic-int8", "int8", "pruned-int8")


def convert(*argv: str) -> int:
    return main(["models", "convert", *argv])


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("convert") / "edge"
    capture = pytest.MonkeyPatch()
    import io
    import sys

    buffer = io.StringIO()
    capture.setattr(sys, "stdout", buffer)
    try:
        argv = [*ARCH, *LABELS, "--calibration", str(EVAL_SAMPLE), "--calibration-count", "50"]
        argv += ["--eval", str(EVAL_SAMPLE), "--eval-count", "200", "--prune", "0.5"]
        assert convert(*argv, "--out", str(out)) == 0
    finally:
        capture.undo()
    return out, buffer.getvalue()


def test_every_variant_is_written_with_its_card(converted: tuple[Path, str]) -> None:
    out, table = converted
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"fashion-edge-cnn_{v}.{ext}" for v in VARIANTS for ext in ("json", "tflite")
    )
    for variant in VARIANTS:
        assert any(line.startswith(f"{variant} ") for line in table.splitlines())
        model = out / f"fashion-edge-cnn_{variant}.tflite"
        card = ModelCard.load(model.with_suffix(".json"))
        runtime = ModelRuntime.load(model, num_threads=1)  # the card fits the model
        assert runtime.sha256 == card.sha256 and card.size_bytes == model.stat().st_size
        assert card.metrics.eval_dataset == "fashion-mnist-eval (200 images)"
        assert card.labels[0] == "tshirt_top" and card.preprocess.color == "gray"


def test_figures(converted: tuple[Path, str]) -> None:
    out = converted[0]
    cards = {v: ModelCard.load(out / f"fashion-edge-cnn_{v}.json") for v in VARIANTS}
    extra = {v: c.metrics.model_extra or {} for v, c in cards.items()}
    accuracy = {v: c.metrics.accuracy or 0.0 for v, c in cards.items()}
    assert extra["float32"]["float32_top1_agreement"] == 1.0
    assert accuracy["float32"] > 0.85  # the committed model is 0.90 on the whole test split
    assert abs(accuracy["int8"] - accuracy["float32"]) <= 0.03
    assert extra["int8"]["float32_top1_agreement"] >= 0.95
    assert extra["pruned-int8"]["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert extra["pruned-int8"]["gzip_size_bytes"] < extra["int8"]["gzip_size_bytes"]
    sizes = {v: c.size_bytes for v, c in cards.items()}
    assert sizes["float16"] < sizes["float32"] and sizes["int8"] < sizes["float16"]


def test_int8_io(tmp_path: Path) -> None:
    out = tmp_path / "io"
    calibration = ["--calibration", str(EVAL_SAMPLE), "--calibration-count", "20"]
    assert convert(*ARCH, *calibration, "--variants", "int8", "--int8-io", "--out", str(out)) == 0
    runtime = ModelRuntime.load(out / "fashion-edge-cnn_int8.tflite", num_threads=1)
    assert runtime.input_spec.tensor.dtype == "int8" and runtime.output_spec.dtype == "int8"


def test_unreadable_calibration_image_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calibration = tmp_path / "calibration"
    shutil.copytree(EVAL_SAMPLE / "bag", calibration / "bag")
    broken = calibration / "bag" / "0000-broken.png"
    broken.write_bytes(b"\x89PNG not really")
    out = tmp_path / "out"
    assert convert(*ARCH, "--calibration", str(calibration), "--out", str(out)) != 0
    assert f"{broken}: cannot be decoded as an image" in capsys.readouterr().err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["calibration"]


def test_unsupported_operator_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    class Spectrum(torch.nn.Module):  # type: ignore[misc,name-defined]
        def forward(self, x: Any) -> Any:
            return torch.fft.fft2(x).abs().mean(dim=(2, 3))

    source = tmp_path / "spectrum.pt2"
    program = torch.export.export(Spectrum().eval(), (torch.zeros(1, 3, 8, 8),))
    torch.export.save(program, source)
    out = tmp_path / "out"
    assert convert(str(source), "--variants", "float32,float16", "--out", str(out)) != 0
    error = capsys.readouterr().err
    assert "conversion failed: RuntimeError at operator aten._to_copy.default" in error, error
    assert "layer forward: return torch.fft.fft2(x)" in error, error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spectrum.pt2"]


def test_torchscript_source_with_normalisation(tmp_path: Path) -> None:
    """A plain NCHW network saved as TorchScript; the normalisation goes into the card."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 26 * 26, 10),
    ).eval()
    source = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.trace(net, torch.zeros(1, 1, 28, 28)), str(source))
    out = tmp_path / "plain"
    argv = [str(source), "--input-shape", "28,28,1", "--mean", "72.9", "--std", "90", *LABELS]
    assert (
        convert(
            *argv,
            "--variants",
            "float32",
            "--eval",
            str(EVAL_SAMPLE),
            "--eval-count",
            "20",
            "--out",
            str(out),
        )
        == 0
    )
    card = ModelCard.load(out / "plain_float32.json")
    assert (card.preprocess.mean, card.preprocess.std) == (72.9, 90.0)
    assert card.build_command.startswith("edgecascade models convert plain.pt --input-shape")
