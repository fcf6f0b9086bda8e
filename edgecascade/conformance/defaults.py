"""What the CLI shows before anything heavy is imported: the check groups, in the order they
run, and the committed model and frames a run uses by default (in a checkout of the repository)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO / "models" / "fashion" / "fashion_edge_int8.tflite"
DEFAULT_OFFER_MODEL = REPO / "models" / "fashion" / "fashion_edge_fp32.tflite"
DEFAULT_FRAMES = REPO / "data" / "fashion-mnist-eval"

# The LWT kill and the dead letter (sent with the device's credentials) come last; the acks
# check late, so it has watched the agent for longer.
GROUP_NAMES = (
    "state",
    "results",
    "escalations",
    "verdicts",
    "commands",
    "offers",
    "acks",
    "websockets",
    "lwt",
    "dead_letter",
)
