"""Result messages the benchmarks send: the size and shape of an edge result, top-3 and timings."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgecascade.shared.messages import ResultMessage


def sample_result(i: int) -> ResultMessage:
    """The ``i``-th benchmark result: a fresh message id, frame ``frame-<i>``."""
    from edgecascade.shared.messages import ModelRef, Prediction, ResultMessage

    return ResultMessage(
        frame_id=f"frame-{i}",
        captured_at=time.time(),
        model=ModelRef(name="fashion-edge", version="1.0.0", sha256="0" * 64),
        top=[Prediction(index=k, label=f"class{k}", score=0.9 - 0.3 * k) for k in range(3)],
        latency_ms={"preprocess": 0.2, "invoke": 1.5, "postprocess": 0.05},
    )
