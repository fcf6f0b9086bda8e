"""The torch weights of a committed model, read back from its fp32 ``.tflite``.

The committed fashion edge pair was built before the build kept its state_dict, and rebuilding it
today does not reproduce it byte for byte (another torch and converter version: float top-1
0.9013 instead of 0.9009). Its fp32 file holds the trained float weights exactly, so they are read
back from there into the registered architecture: the committed ``fashion_edge.pt`` is what
:func:`fashion_edge_state_dict` returns for ``fashion_edge_fp32.tflite``, and the int8 file was
quantized from the same float weights (a test checks that the torch module and the fp32 file
agree on the evaluation sample).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgecascade.shared.errors import ModelError


def constant_tensors(path: Path) -> dict[tuple[int, ...], list[npt.NDArray[np.float32]]]:
    """The float constant tensors of a ``.tflite``, grouped by shape, in tensor order."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    found: dict[tuple[int, ...], list[npt.NDArray[np.float32]]] = {}
    for detail in interpreter.get_tensor_details():
        if detail["dtype"] is not np.float32 or detail["index"] in _io(interpreter):
            continue
        try:
            value = interpreter.get_tensor(detail["index"])
        except ValueError:  # an activation: no data until invoked
            continue
        if value.ndim:
            found.setdefault(tuple(value.shape), []).append(np.array(value))
    return found


def _io(interpreter: Any) -> set[int]:
    details = interpreter.get_input_details() + interpreter.get_output_details()
    return {int(d["index"]) for d in details}


def fashion_edge_state_dict(fp32_model: Path) -> dict[str, Any]:
    """The ``fashion-edge-cnn`` state_dict held by its fp32 export, converted back: the first
    conv became a depthwise conv [1, 3, 3, 8] with the division by the pixel std folded into its
    weights; the second conv is OHWI."""
    import torch

    from edgecascade.modelzoo.architectures import FASHION_STD

    tensors = constant_tensors(fp32_model)

    def one(shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
        matches = tensors.get(shape, [])
        if len(matches) != 1:
            raise ModelError(f"{fp32_model}: expected one float tensor of shape {shape}")
        return matches[0]

    arrays = {
        "1.weight": one((1, 3, 3, 8)).transpose(3, 0, 1, 2) * np.float32(FASHION_STD),
        "1.bias": one((8,)),
        "4.weight": one((16, 3, 3, 8)).transpose(0, 3, 1, 2),
        "4.bias": one((16,)),
        "8.weight": one((10, 784)),
        "8.bias": one((10,)),
    }
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
