"""The demo's models, registered through the cloud API the way an operator uploads one: a
multipart form with the model file, its labels and its card's name, version and preprocessing,
and its trainable source (architecture and state_dict) when the card has one, so the trainer can
fine-tune the demo's edge model."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from edgecascade.shared.errors import EdgeCascadeError


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
