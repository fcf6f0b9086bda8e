"""matplotlib for the benchmarks' ``--plot``, with the file backend (no display needed)."""

from __future__ import annotations

from typing import Any

from edgecascade.shared.errors import EdgeCascadeError


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or a clear error naming the extra to install."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EdgeCascadeError(
            "--plot needs matplotlib: pip install 'edgecascade[bench]'"
        ) from None
    return plt
