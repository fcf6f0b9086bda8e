"""Pure-numpy score helpers: softmax with temperature, normalised entropy, top-1/2 margin."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


def softmax(logits: npt.NDArray[np.floating], temperature: float = 1.0) -> FloatArray:
    """Probabilities from logits, numerically stable; ``temperature`` > 1 flattens them."""
    z: npt.NDArray[np.float64] = np.asarray(logits, dtype=np.float64) / temperature
    e: npt.NDArray[np.float64] = np.exp(z - z.max())
    out: FloatArray = (e / e.sum()).astype(np.float32)
    return out


def sharpen(probabilities: npt.NDArray[np.floating], temperature: float) -> FloatArray:
    """Apply a temperature to probabilities: p^(1/T), renormalised (same as softmax(log p / T))."""
    p: npt.NDArray[np.float64] = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, None)
    p = p ** (1.0 / temperature)
    out: FloatArray = (p / p.sum()).astype(np.float32)
    return out


def looks_like_probabilities(values: npt.NDArray[np.floating], tolerance: float = 0.02) -> bool:
    """True when all values are in [0, 1] and they sum to 1 within ``tolerance``."""
    v = np.asarray(values, dtype=np.float64)
    return bool(v.min() >= -1e-6 and v.max() <= 1 + 1e-6 and abs(v.sum() - 1.0) <= tolerance)


def normalized_entropy(probabilities: npt.NDArray[np.floating]) -> float:
    """Entropy divided by log(N): 0 for a one-hot vector, 1 for a uniform one."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0)
    if p.size < 2:
        return 0.0
    return float(-(p * np.log(p)).sum() / np.log(p.size))


def top2_margin(probabilities: npt.NDArray[np.floating]) -> float:
    """Top-1 minus top-2 probability."""
    p = np.sort(np.asarray(probabilities, dtype=np.float64))
    return float(p[-1] - p[-2]) if p.size >= 2 else float(p[-1])
