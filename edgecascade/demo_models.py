"""The demo's model pairs and their frames (``--pair``), and how the demo registers its models:
through the cloud API the way an operator uploads one, a multipart form with the model file, its
labels and its card's name, version and preprocessing, and its trainable source (architecture and
state_dict) when the card has one, so the trainer can fine-tune the demo's edge model."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgecascade.shared.errors import EdgeCascadeError

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class DemoPair:
    """What ``edgecascade demo --pair NAME`` runs: the cameras' model, the worker's, the folder
    the cameras replay and a candidate registered next to the edge model as version 1.1.0, so
    the dashboard has a rollout to offer (None: no candidate)."""

    edge: Path
    cloud: Path
    frames: Path
    candidate: Path | None


PAIRS = {
    "fashion": DemoPair(
        edge=REPO / "models" / "fashion" / "fashion_edge_int8.tflite",
        cloud=REPO / "models" / "fashion" / "fashion_cloud_int8.tflite",
        frames=REPO / "data" / "fashion-mnist-eval",
        candidate=REPO / "models" / "fashion" / "fashion_edge_fp32.tflite",
    ),
    "imagenet": DemoPair(
        edge=REPO / "models" / "imagenet" / "imagenet_edge_int8.tflite",
        cloud=REPO / "models" / "imagenet" / "imagenet_cloud_int8.tflite",
        frames=REPO / "data" / "imagenet-photos",
        candidate=None,
    ),
}


def register_models(
    api: str, admin_token: str, model: Path, candidate: Path | None, say: Callable[[str], None]
) -> None:
    """The cameras' model (what a rollout rolls back to) and the candidate, through the API."""
    models: list[tuple[Path, str | None]] = [(model, None)]
    if candidate is not None and candidate.exists() and model != candidate:
        models.append((candidate, "1.1.0"))
    for path, version in models:
        registered = register_model(api, admin_token, path, version)
        if registered is not None:
            say(f"registered model {registered} ({path.name})")


def register_model(api: str, admin_token: str, path: Path, version: str | None) -> str | None:
    """Upload the model at ``path`` (``version`` overrides its card's); returns "name version",
    or None when it was registered before (a work directory used before)."""
    from edgecascade.shared.runtime.card import load_card_for

    card = load_card_for(path)
    fields = {
        "name": card.name,
        "version": version or card.version,
        "preprocess": card.preprocess.model_dump_json(),
    }
    files = {
        "file": (path.name, path.read_bytes()),
        "labels": ("labels.txt", "\n".join(card.labels).encode()),
    }
    if card.trainable is not None:  # the registry names the weights file itself
        source = card.trainable.model_dump(include={"architecture", "weights_sha256"})
        fields["trainable"] = json.dumps(source)
        weights = path.parent / card.trainable.weights
        files["weights"] = (weights.name, weights.read_bytes())
    body, content_type = _multipart(fields, files)
    request = urllib.request.Request(
        api + "/api/models",
        data=body,
        headers={"Authorization": f"Bearer {admin_token}", "Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(request, timeout=60):
            pass
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        if exc.code == 409:  # a work directory used before: registered then
            return None
        raise EdgeCascadeError(f"registering {path.name} failed: {detail}") from None
    return f"{fields['name']} {fields['version']}"


def _multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body (the standard library has no encoder for one)."""
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    for name, (filename, data) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
