"""The LiteRT model runtime shared by the agent, the cloud workers and ``edgecascade models``.

It reads the model, not assumptions: input size, layout, dtype and quantization come from the
interpreter's tensor details; outputs may be logits or probabilities, float or quantized; labels
and preprocessing come from the model card or, without one, from what the model says about
itself (:mod:`~edgecascade.shared.runtime.describe`). The interpreter is imported lazily
(``ai-edge-litert``, else ``tflite-runtime``) so components that never run a model do not need
it. XNNPACK is LiteRT's default CPU delegate; ``num_threads`` sets its threads. An
:class:`Accelerator` (an Edge TPU, GPU or NPU delegate library, loaded with LiteRT's
``load_delegate``) runs the model instead; ``ModelRuntime.accelerator`` says which ran it.

One :class:`ModelRuntime` is not thread-safe: hold one per thread.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import numpy.typing as npt

from edgecascade.shared.errors import AcceleratorError, ModelError
from edgecascade.shared.runtime.card import ModelCard, card_path_for
from edgecascade.shared.runtime.describe import describe, from_card
from edgecascade.shared.runtime.preprocess import (
    Array,
    DecodePlan,
    Image,
    InputSpec,
    TensorSpec,
    decode_plan,
    dequantize,
    pixel_table,
    preprocess,
)
from edgecascade.shared.runtime.scores import looks_like_probabilities, sharpen, softmax

logger = logging.getLogger(__name__)

TFLITE_IDENTIFIER = b"TFL3"
SUPPORTED_DTYPES = frozenset({"float32", "int8", "uint8"})


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise ModelError(
                "no TFLite runtime installed: pip install ai-edge-litert (or tflite-runtime)"
            ) from None
    return Interpreter


def _load_delegate_fn() -> Any:
    try:
        from ai_edge_litert.interpreter import load_delegate
    except ImportError:
        from tflite_runtime.interpreter import load_delegate
    return load_delegate


@dataclass(frozen=True, slots=True)
class Accelerator:
    """A LiteRT delegate library to run models on (``runtime.delegate`` of the agent): its path
    or name (as ``dlopen`` finds it, e.g. ``libedgetpu.so.1``), its options, and whether a
    delegate that fails falls back to the CPU (a warning) instead of stopping (an error)."""

    library: str
    options: tuple[tuple[str, str], ...] = ()
    fallback: bool = False

    @property
    def name(self) -> str:
        """What results and telemetry report: the library's file name."""
        return PurePath(self.library).name

    def load(self) -> Any:
        """The loaded delegate; :class:`AcceleratorError` naming the library and the reason.

        The library is opened and checked for LiteRT's delegate entry point first: LiteRT's
        own loader, given a library without it, fails in its destructor too."""
        try:
            library = ctypes.CDLL(self.library)
        except OSError as exc:
            raise AcceleratorError(
                f"accelerator delegate {self.library!r} failed to load: {exc}"
            ) from exc
        if not hasattr(library, "tflite_plugin_create_delegate"):
            raise AcceleratorError(
                f"accelerator delegate {self.library!r} failed to load: it is no LiteRT "
                "delegate (no tflite_plugin_create_delegate symbol)"
            )
        try:
            return _load_delegate_fn()(self.library, dict(self.options))
        except (ValueError, RuntimeError, OSError) as exc:
            reason = " ".join(str(exc).split())
            raise AcceleratorError(
                f"accelerator delegate {self.library!r} failed to load: {reason}"
            ) from exc


@dataclass(frozen=True, slots=True)
class Classification:
    """Class probabilities of one image and how long each stage took."""

    probabilities: npt.NDArray[np.float32]
    labels: tuple[str, ...]
    timings_ms: dict[str, float]
    accelerator: str = "cpu"  # what ran invoke(): "cpu" or the delegate library's name

    def top(self, k: int = 5) -> list[tuple[int, str, float]]:
        """The ``k`` most likely classes as ``(index, label, probability)``, best first."""
        order = np.argsort(-self.probabilities, kind="stable")[:k]
        return [(int(i), self.labels[i], float(self.probabilities[i])) for i in order]


def tensor_spec(detail: dict[str, Any]) -> TensorSpec:
    dtype = np.dtype(detail["dtype"]).name
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorSpec(
        name=str(detail.get("name", "")),
        index=int(detail["index"]),
        shape=tuple(int(d) for d in detail["shape"]),
        dtype=dtype,
        scale=float(scale),
        zero_point=int(zero_point),
    )


def _io_specs(interpreter: Any, source: str) -> tuple[InputSpec, TensorSpec]:
    """The one image input and the one class-score output, checked."""
    inputs = [tensor_spec(d) for d in interpreter.get_input_details()]
    outputs = [tensor_spec(d) for d in interpreter.get_output_details()]
    if len(inputs) != 1 or len(outputs) != 1:
        names = ", ".join(repr(t.name) for t in inputs)
        raise ModelError(
            f"{source}: a classifier needs one image input and one output, this model has "
            f"{len(inputs)} input(s) ({names}) and {len(outputs)} output(s)"
        )
    try:
        input_spec = InputSpec.from_tensor(inputs[0])
    except ValueError as exc:
        raise ModelError(f"{source}: {exc}") from exc
    for spec in (inputs[0], outputs[0]):
        if spec.dtype not in SUPPORTED_DTYPES:
            raise ModelError(f"{source}: tensor {spec.name!r} has unsupported dtype {spec.dtype}")
    shape = outputs[0].shape
    if not (len(shape) == 1 or (len(shape) == 2 and shape[0] == 1)):
        raise ModelError(f"{source}: output shape {shape} is not [N] or [1, N]")
    return input_spec, outputs[0]


def _interpreter(content: bytes, source: str, num_threads: int, delegates: list[Any]) -> Any:
    interpreter_cls = _interpreter_class()
    try:
        interpreter = interpreter_cls(
            model_content=content, num_threads=num_threads, experimental_delegates=delegates
        )
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{source}: the interpreter cannot load it: {exc}") from exc
    return interpreter


def open_interpreter(
    content: bytes, source: str, num_threads: int, accelerator: Accelerator | None
) -> tuple[Any, str]:
    """The interpreter and what runs it: the delegate's name, or ``cpu``; with
    ``accelerator.fallback`` a delegate that fails to load or to take the model leaves the CPU
    (a warning), without it that is an :class:`AcceleratorError`."""
    if accelerator is None:
        return _interpreter(content, source, num_threads, []), "cpu"
    try:
        delegate = accelerator.load()
        try:
            interpreter = _interpreter(content, source, num_threads, [delegate])
        except ModelError as exc:
            raise AcceleratorError(
                f"accelerator delegate {accelerator.library!r} cannot run {source}: {exc}"
            ) from exc
    except AcceleratorError as exc:
        if not accelerator.fallback:
            raise
        logger.warning("%s; running on the CPU (delegate fallback is on)", exc)
        return _interpreter(content, source, num_threads, []), "cpu"
    return interpreter, accelerator.name


def read_model_file(path: Path) -> bytes:
    """The bytes of a ``.tflite`` file; :class:`ModelError` naming it when it cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: model file does not exist") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read model file: {exc.strerror}") from exc


class ModelRuntime:
    """One loaded model. Without a card (``card=None``) it runs with the card
    :func:`~edgecascade.shared.runtime.describe.describe` reads from the model itself;
    ``description`` says which source decided."""

    def __init__(
        self,
        content: bytes,
        source: str,
        card: ModelCard | None,
        num_threads: int = 2,
        accelerator: Accelerator | None = None,
    ) -> None:
        self.source = source
        self.sha256 = hashlib.sha256(content).hexdigest()
        self.size_bytes = len(content)
        if len(content) < 8:
            raise ModelError(f"{source}: file is {len(content)} bytes, too short for a model")
        if content[4:8] != TFLITE_IDENTIFIER:
            raise ModelError(
                f"{source}: not a TFLite model (file identifier {content[4:8]!r}, "
                f"expected {TFLITE_IDENTIFIER!r})"
            )
        if card is not None and card.task != "classification":
            raise ModelError(
                f"{source}: its card says task {card.task!r}; ModelRuntime classifies, load it "
                "with shared.runtime.detector.Detector"
            )
        self._interpreter, self.accelerator = open_interpreter(
            content, source, num_threads, accelerator
        )
        self.input_spec, self.output_spec = _io_specs(self._interpreter, source)
        self.num_classes = self.output_spec.shape[-1]
        if card is None:
            stem = PurePath(source).stem or "model"
            self.description = describe(content, source, stem, self.input_spec, self.num_classes)
        else:
            self.description = from_card(card)
        self.card = card = self.description.card
        if card.labels and len(card.labels) != self.num_classes:
            raise ModelError(
                f"{source}: model has {self.num_classes} outputs but its card lists "
                f"{len(card.labels)} labels"
            )
        self.labels = tuple(card.labels) or tuple(str(i) for i in range(self.num_classes))
        try:
            self._pixel_table = pixel_table(self.input_spec, card.preprocess)
        except ValueError as exc:
            raise ModelError(f"{source}: {exc}") from exc
        logger.info("%s: %s", source, self.description.summary())

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        num_threads: int = 2,
        card: ModelCard | None = None,
        accelerator: Accelerator | None = None,
    ) -> ModelRuntime:
        """Load a ``.tflite`` file with ``card``, else its card file (``<stem>.json``), else
        the card read from the model (metadata, input quantization, defaults)."""
        content = read_model_file(path)
        if card is None and card_path_for(path).exists():
            card = ModelCard.load(card_path_for(path))
        return cls(content, str(path), card, num_threads, accelerator)

    @classmethod
    def from_bytes(
        cls,
        content: bytes,
        name: str,
        card: ModelCard | None,
        *,
        num_threads: int = 2,
        accelerator: Accelerator | None = None,
    ) -> ModelRuntime:
        """Load a model held in memory (a downloaded artifact, before it is installed);
        ``card=None`` reads the card from the model."""
        return cls(content, name, card, num_threads, accelerator)

    def decode_plan(self, height: int, width: int) -> DecodePlan:
        """How small a ``height`` x ``width`` frame may be decoded for this model."""
        return decode_plan(height, width, self.input_spec, self.card.preprocess)

    def preprocess(self, image: Image) -> Array:
        return preprocess(image, self.input_spec, self.card.preprocess, self._pixel_table)

    def invoke_raw(self, tensor: Array) -> Array:
        """Run the interpreter on a prepared input tensor; returns the raw output row."""
        self._interpreter.set_tensor(self.input_spec.tensor.index, tensor)
        self._interpreter.invoke()
        out: Array = self._interpreter.get_tensor(self.output_spec.index)
        return out.reshape(-1)

    def postprocess(self, raw: Array) -> npt.NDArray[np.float32]:
        """Raw output -> calibrated probabilities (dequantize; softmax logits; temperature)."""
        values = dequantize(raw, self.output_spec)
        kind = self.card.output
        if kind == "auto":
            kind = "probabilities" if looks_like_probabilities(values) else "logits"
        if kind == "logits":
            return softmax(values, self.card.temperature)
        if self.card.temperature != 1.0:
            return sharpen(values, self.card.temperature)
        total = float(values.sum())
        return (values / total).astype(np.float32) if total > 0 else values

    def classify(self, image: Image) -> Classification:
        t0 = time.perf_counter()
        tensor = self.preprocess(image)
        return self.classify_tensor(tensor, preprocess_ms=(time.perf_counter() - t0) * 1000)

    def classify_tensor(self, tensor: Array, preprocess_ms: float = 0.0) -> Classification:
        """Invoke and postprocess an input :meth:`preprocess` made (possibly on another thread)."""
        t1 = time.perf_counter()
        raw = self.invoke_raw(tensor)
        t2 = time.perf_counter()
        probabilities = self.postprocess(raw)
        t3 = time.perf_counter()
        timings = {
            "preprocess": preprocess_ms,
            "invoke": (t2 - t1) * 1000,
            "postprocess": (t3 - t2) * 1000,
        }
        return Classification(probabilities, self.labels, timings, self.accelerator)
