"""The torch side of ``models convert``: load the network, prune it, convert and quantize it.

Conversion is litert-torch's, quantization ai-edge-quantizer's recipes (float16 by float casting
of the weights, dynamic-range int8, static int8 calibrated on images); pruning is
``torch.nn.utils.prune`` (global L1 unstructured over conv and linear weights), made permanent
before export.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgecascade.modelzoo.convert_cli import ConvertSpec
from edgecascade.modelzoo.export import to_tflite
from edgecascade.shared.errors import ModelError


@dataclass
class Network:
    module: Any  # an eval-mode torch module
    input_shape: tuple[int, int, int]  # H, W, C
    layout: str  # "nchw" or "nhwc"

    def sample(self) -> npt.NDArray[np.float32]:
        h, w, c = self.input_shape
        shape = (1, c, h, w) if self.layout == "nchw" else (1, h, w, c)
        return np.random.default_rng(0).uniform(0, 1, shape).astype(np.float32)


def load_network(spec: ConvertSpec) -> Network:
    """The module named by ``spec``, in eval mode, with its input shape."""
    import torch

    if spec.architecture is not None:
        from edgecascade.modelzoo.architectures import architecture

        arch = architecture(spec.architecture)
        module = arch.build()
        assert spec.weights is not None
        try:
            module.load_state_dict(torch.load(spec.weights, weights_only=True))
        except Exception as exc:
            raise ModelError(
                f"{spec.weights}: not a state_dict of {arch.id}: {_first_line(exc)}"
            ) from exc
        return Network(module.eval(), arch.input_shape, "nhwc")
    assert spec.source is not None
    if spec.source.suffix == ".pt2":
        try:
            program = torch.export.load(spec.source)
        except Exception as exc:
            raise ModelError(
                f"{spec.source}: not an ExportedProgram (torch.export.save): {_first_line(exc)}"
            ) from exc
        shape = spec.input_shape or _program_shape(program, spec.layout, spec.source)
        return Network(program.module(), shape, spec.layout)
    return _torchscript(spec)


def _torchscript(spec: ConvertSpec) -> Network:
    """A TorchScript file, turned into an ExportedProgram (litert-torch does not take scripts)."""
    import torch
    from torch._export.converter import TS2EPConverter

    assert spec.source is not None
    if spec.input_shape is None:
        raise ModelError(f"{spec.source}: a TorchScript file needs --input-shape H,W,C")
    try:
        script = torch.jit.load(str(spec.source)).eval()
    except Exception as exc:
        raise ModelError(
            f"{spec.source}: not a TorchScript file (torch.jit.save): {_first_line(exc)}"
        ) from exc
    network = Network(script, spec.input_shape, spec.layout)
    sample = (torch.from_numpy(network.sample()),)
    try:
        program = TS2EPConverter(script, sample).convert()
    except Exception as exc:
        raise ModelError(f"{spec.source}: {conversion_failure(exc)}") from exc
    network.module = program.module()
    return network


def _program_shape(program: Any, layout: str, source: Path) -> tuple[int, int, int]:
    """H, W, C of the program's one image input."""
    user_inputs = set(program.graph_signature.user_inputs)
    shapes = [
        tuple(node.meta["val"].shape)
        for node in program.graph.nodes
        if node.op == "placeholder" and node.name in user_inputs
    ]
    if len(shapes) != 1 or len(shapes[0]) != 4:
        raise ModelError(f"{source}: expected one 4-D image input, the program takes {shapes}")
    _n, a, b, c = (int(v) for v in shapes[0])
    h, w, ch = (b, c, a) if layout == "nchw" else (a, b, c)
    if ch not in (1, 3):
        raise ModelError(
            f"{source}: its input {list(shapes[0])} has {ch} channels as {layout}; give --layout"
        )
    return h, w, ch


def prune(module: Any, sparsity: float) -> tuple[Any, float]:
    """A copy of ``module`` with the smallest ``sparsity`` share of its conv and linear weights
    (global L1) set to zero, permanently; and the share of those weights that are zero."""
    import torch
    from torch.nn.utils import prune as torch_prune

    pruned = copy.deepcopy(module)
    targets = [
        (m, "weight")
        for m in pruned.modules()
        if isinstance(getattr(m, "weight", None), torch.nn.Parameter) and m.weight.dim() >= 2
    ]
    if not targets:
        raise ModelError("--prune: the network has no conv or linear weights to prune")
    torch_prune.global_unstructured(
        targets, pruning_method=torch_prune.L1Unstructured, amount=sparsity
    )
    for m, name in targets:
        torch_prune.remove(m, name)
    zeros = sum(int((m.weight == 0).sum()) for m, _ in targets)
    total = sum(m.weight.numel() for m, _ in targets)
    return pruned, zeros / total


def float_tflite(network: Network, module: Any | None = None) -> bytes:
    """The float32 flatbuffer; ModelError naming the operator and layer that failed."""
    try:
        return to_tflite(module if module is not None else network.module, network.sample())
    except Exception as exc:
        raise ModelError(f"conversion failed: {conversion_failure(exc)}") from exc


def conversion_failure(exc: BaseException) -> str:
    """What failed in a torch.export / litert-torch error: the operator, the graph node, the
    source line of the layer, and the converter's own message."""
    text = "\n".join(str(e) for e in _chain(exc))
    parts = []
    if match := re.search(r"target=([\w.:]+)", text):
        parts.append(f"operator {match.group(1).removeprefix('torch.ops.')}")
    if match := re.search(r"While executing %(\w+)", text):
        parts.append(f"node %{match.group(1)}")
    if match := re.search(r"Original traceback:\s*\n\s*File .*?, in (\w+)\n\s*(.+)", text):
        parts.append(f"layer {match.group(1)}: {match.group(2).strip()}")
    where = f" at {', '.join(parts)}" if parts else ""
    return f"{type(exc).__name__}{where}: {_first_line(exc)}"


def _chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__


def quantize(
    float_model: bytes,
    base: str,
    calibration: Sequence[npt.NDArray[np.float32]],
    int8_io: bool,
) -> bytes:
    """``float_model`` as ``base`` (float32, float16, dynamic-int8, int8)."""
    if base == "float32":
        return float_model
    from ai_edge_quantizer import qtyping, quantizer, recipe, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    ops = qtyping.TFLOperationName
    manager = recipe_manager.RecipeManager()
    if base == "float16":
        manager.add_weight_only_config(
            ".*", ops.ALL_SUPPORTED, num_bits=16, algorithm_key=AlgorithmName.FLOAT_CASTING
        )
        chosen = manager.get_quantization_recipe()
    elif base == "dynamic-int8":
        chosen = recipe.dynamic_wi8_afp32()
    else:
        manager.add_static_config(".*", ops.ALL_SUPPORTED, activation_num_bits=8, weight_num_bits=8)
        if not int8_io:  # float in and out: quantize/dequantize at the edges of the graph
            for op in (ops.INPUT, ops.OUTPUT):
                manager.add_quantization_config(".*", op, algorithm_key=AlgorithmName.NO_QUANTIZE)
        chosen = manager.get_quantization_recipe()
    qt = quantizer.Quantizer(bytearray(float_model), chosen)
    try:
        statistics = (
            qt.calibrate(_calibration_data(float_model, calibration)) if base == "int8" else None
        )
        quantized = qt.quantize(statistics, enable_progress_report=False).quantized_model
    except Exception as exc:
        raise ModelError(f"{base}: ai-edge-quantizer failed: {_first_line(exc)}") from exc
    if quantized is None:
        raise ModelError(f"{base}: ai-edge-quantizer returned no model")
    return bytes(quantized)


def _calibration_data(
    float_model: bytes, calibration: Sequence[npt.NDArray[np.float32]]
) -> dict[str, list[dict[str, npt.NDArray[np.float32]]]]:
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_content=float_model).get_signature_list()
    if len(signatures) != 1:
        raise ModelError(f"expected one signature in the converted model, got {list(signatures)}")
    key, io = next(iter(signatures.items()))
    (input_name,) = io["inputs"]
    return {key: [{input_name: x} for x in calibration]}
