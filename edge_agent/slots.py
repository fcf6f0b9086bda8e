"""Model slots A/B: the running model in one slot, the next one installed into the other.

``<data_dir>/slots/{a,b}/model.tflite`` with its card ``model.json``; ``slots/active.json`` names
the active slot and the one before it, and is replaced atomically (tmp file + ``os.replace``), so
a crash leaves either the old pointer or the new one, never half of each. At start the active
slot's file is re-hashed and loaded; if that fails the previous slot, then the factory model, is
used instead, and the pointer is corrected.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from edgecascade.edge_agent.models import EdgeModel, load_model, model_from_bytes
from edgecascade.shared.errors import ModelError
from edgecascade.shared.model_messages import ModelManifest
from edgecascade.shared.runtime.card import ModelCard
from edgecascade.shared.runtime.runtime import Accelerator

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlotModel:
    slot: str
    version: str
    sha256: str


class ModelSlots:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.pointer = root / "active.json"
        root.mkdir(parents=True, exist_ok=True)

    def _read_pointer(self) -> dict[str, SlotModel]:
        try:
            raw = json.loads(self.pointer.read_text())
            return {key: SlotModel(**value) for key, value in raw.items() if value is not None}
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return {}

    def _write_pointer(self, active: SlotModel | None, previous: SlotModel | None) -> None:
        tmp = self.pointer.with_suffix(".tmp")
        data = {
            "active": vars(active) if active else None,
            "previous": vars(previous) if previous else None,
        }
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.pointer)

    @property
    def active(self) -> SlotModel | None:
        return self._read_pointer().get("active")

    def inactive_slot(self) -> str:
        active = self.active
        return "b" if active is not None and active.slot == "a" else "a"

    def model_path(self, slot: str) -> Path:
        return self.root / slot / "model.tflite"

    def install(self, content: bytes, manifest: ModelManifest, card: ModelCard) -> SlotModel:
        """Write the model into the inactive slot and make it active (atomically)."""
        slot = self.inactive_slot()
        path = self.model_path(slot)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(content)
        os.replace(tmp, path)
        card.save(path.with_suffix(".json"))
        new = SlotModel(slot, manifest.version, manifest.sha256)
        self._write_pointer(new, self.active)
        return new

    def load(
        self, factory: Path, threads: int, accelerator: Accelerator | None = None
    ) -> EdgeModel:
        """The active slot's model, else the previous slot's, else the factory model (a
        classifier or a detector, by its card). An accelerator that fails is no reason to give
        up a slot: its error goes to the caller."""
        pointer = self._read_pointer()
        for key in ("active", "previous"):
            chosen = pointer.get(key)
            if chosen is None:
                continue
            path = self.model_path(chosen.slot)
            try:
                content = path.read_bytes()
                if hashlib.sha256(content).hexdigest() != chosen.sha256:
                    raise ModelError(f"{path}: sha256 does not match the slot pointer")
                card = ModelCard.load(path.with_suffix(".json"))
                runtime = model_from_bytes(content, str(path), card, threads, accelerator)
            except (OSError, ModelError) as exc:
                logger.error("model slot %s unusable (%s); falling back", chosen.slot, exc)
                continue
            if key == "previous":
                self._write_pointer(chosen, None)
            return runtime
        if pointer:
            self._write_pointer(None, None)
        return load_model(factory, threads, accelerator)
