"""The model an agent runs: a classifier or a detector, chosen by its card's ``task``.

:class:`~edgecascade.shared.runtime.runtime.ModelRuntime` classifies and
:class:`~edgecascade.shared.runtime.detector.Detector` detects; both split their work the same
way (``decode_plan``, ``preprocess`` on the feed's thread, then ``classify_tensor`` or
``invoke_tensor`` on the loop's, a detector's box decoding on the emit thread), so the frame
pipeline (:mod:`edge_agent.feed`) overlaps the stages for either. A model without a card is read
as a classifier (its card comes from the model itself); a detector always needs its card (the
anchors and labels are not in the file).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from edgecascade.shared.runtime.card import ModelCard, card_path_for
from edgecascade.shared.runtime.detector import Detector, Invoked
from edgecascade.shared.runtime.runtime import Accelerator, ModelRuntime, read_model_file

if TYPE_CHECKING:
    from edgecascade.shared.runtime.detect import DetectionResult
    from edgecascade.shared.runtime.preprocess import Array, Image
    from edgecascade.shared.runtime.runtime import Classification

EdgeModel = ModelRuntime | Detector


def model_from_bytes(
    content: bytes,
    source: str,
    card: ModelCard | None,
    threads: int,
    accelerator: Accelerator | None = None,
) -> EdgeModel:
    """A detector when the card says ``task: detection``, else a classifier."""
    if card is not None and card.task == "detection":
        return Detector(content, source, card, threads, accelerator)
    return ModelRuntime.from_bytes(
        content, source, card, num_threads=threads, accelerator=accelerator
    )


def load_model(path: Path, threads: int, accelerator: Accelerator | None = None) -> EdgeModel:
    """A ``.tflite`` file with its card (``<stem>.json``) when there is one."""
    content = read_model_file(path)
    card_file = card_path_for(path)
    card = ModelCard.load(card_file) if card_file.exists() else None
    return model_from_bytes(content, str(path), card, threads, accelerator)


def infer_tensor(
    model: EdgeModel, tensor: Array, height: int, width: int, preprocess_ms: float = 0.0
) -> Classification | DetectionResult:
    """Stage 2 of the pipeline for either kind: a detector needs the frame's size to put its
    boxes in the frame's pixels."""
    if isinstance(model, Detector):
        return model.detect_tensor(tensor, height, width, preprocess_ms)
    return model.classify_tensor(tensor, preprocess_ms)


def invoke_tensor(
    model: EdgeModel, tensor: Array, height: int, width: int, preprocess_ms: float = 0.0
) -> Classification | Invoked:
    """Stage 2 of the agent's pipeline: a classifier's answer, or a detector's raw outputs,
    whose box decoding the emit thread does (:meth:`Invoked.finish`) while this thread invokes
    the next frame."""
    if isinstance(model, Detector):
        return model.invoke_tensor(tensor, height, width, preprocess_ms)
    return model.classify_tensor(tensor, preprocess_ms)


def infer(model: EdgeModel, image: Image) -> Classification | DetectionResult:
    """Preprocess and infer one frame (benchmarks and probes; the agent splits the two)."""
    t0 = time.perf_counter()
    tensor = model.preprocess(image)
    ms = (time.perf_counter() - t0) * 1000
    return infer_tensor(model, tensor, image.shape[0], image.shape[1], ms)
