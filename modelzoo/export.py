"""PyTorch -> LiteRT (``litert-torch``) -> static int8 (``ai-edge-quantizer``).

Reusable for every pair: the caller wraps its network so the exported graph takes the raw NHWC
image (the permute and normalisation live inside the graph) and returns logits.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgecascade.shared.errors import ModelError

logger = logging.getLogger(__name__)

TRAIN_HINT = "install the train extra: pip install 'edgecascade[train]' torch==2.13.0"


def require_training_stack() -> None:
    """Fail early, with the install command, when torch or the converters are missing."""
    missing = []
    for module in ("torch", "litert_torch", "ai_edge_quantizer"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ModelError(f"missing {', '.join(missing)}; {TRAIN_HINT}")


def to_tflite(module: Any, sample: npt.NDArray[np.float32]) -> bytes:
    """Convert an eval-mode torch module to a float TFLite flatbuffer."""
    import litert_torch
    import torch

    with contextlib.suppress(NotImplementedError):  # an ExportedProgram's module: fixed mode
        module.eval()
    edge_model = litert_torch.convert(module, (torch.from_numpy(sample),))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        edge_model.export(str(path))
        return path.read_bytes()


def widen_output_range(
    qsvs: dict[str, dict[str, Any]], tensor: str, low: float, high: float
) -> dict[str, dict[str, Any]]:
    """Make the calibrated range of ``tensor`` cover at least [low, high].

    Min/max calibration on a few photos gives the logits a narrow range (for EfficientNet-Lite
    about +-8): confident logits then clip and the softmax confidence collapses.
    """
    if tensor not in qsvs:
        raise ModelError(f"no calibration statistics for output tensor {tensor!r}")
    entry = dict(qsvs[tensor])
    entry["min"] = np.minimum(np.asarray(entry["min"], dtype=np.float32), np.float32(low))
    entry["max"] = np.maximum(np.asarray(entry["max"], dtype=np.float32), np.float32(high))
    return {**qsvs, tensor: entry}


def quantize_int8(
    float_model: bytes,
    calibration: Iterable[npt.NDArray[np.float32]],
    output_range: tuple[float, float] | None = None,
) -> bytes:
    """Static int8 weights and activations, calibrated on ``calibration`` inputs (min/max);
    ``output_range`` widens the output tensor's calibrated range."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer, recipe

    interpreter = Interpreter(model_content=float_model)
    signatures = interpreter.get_signature_list()
    if len(signatures) != 1:
        raise ModelError(f"expected one signature in the exported model, got {list(signatures)}")
    key, io = next(iter(signatures.items()))
    (input_name,) = io["inputs"]
    qt = quantizer.Quantizer(bytearray(float_model), recipe.static_wi8_ai8())
    data = {key: [{input_name: x} for x in calibration]}
    result = qt.calibrate(data, num_threads=2)
    if output_range is not None:
        (output_name,) = [d["name"] for d in interpreter.get_output_details()]
        result = widen_output_range(result, output_name, *output_range)
    quantized = qt.quantize(result, enable_progress_report=False).quantized_model
    if quantized is None:
        raise ModelError("ai-edge-quantizer returned no model")
    return bytes(quantized)
