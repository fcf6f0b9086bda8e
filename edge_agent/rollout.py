"""Receiving a model: offer, signed manifest, resumable chunks, verify, smoke test, switch.

Runs in its own thread; paho's thread only hands it offers and chunks. Chunks are written into a
staging file on disk with the set of received indexes beside it, so an agent restarted in the
middle of a download asks only for what it still misses. Every step is acknowledged on
``model/ack``; any failure (unsigned or wrongly signed manifest, wrong hash, a model that does not
load, a failed smoke test, a download that stalls) is acknowledged as ``failed`` with the reason
and the running model keeps serving.
"""

from __future__ import annotations

import base64
import logging
import queue
import threading
from collections.abc import Callable

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from edgecascade.edge_agent.models import EdgeModel, model_from_bytes
from edgecascade.edge_agent.offers import OfferLedger, OfferRefused
from edgecascade.edge_agent.slots import ModelSlots
from edgecascade.shared.chunks import Download
from edgecascade.shared.errors import AcceleratorError, ContractError, ModelError
from edgecascade.shared.manifest import verify_content, verify_manifest
from edgecascade.shared.model_messages import (
    ModelAckMessage,
    ModelChunkHeader,
    ModelChunkRequestMessage,
    ModelManifest,
    ModelOfferMessage,
)
from edgecascade.shared.runtime.card import ModelCard
from edgecascade.shared.runtime.detector import Detector
from edgecascade.shared.runtime.runtime import Accelerator

logger = logging.getLogger(__name__)

AckFn = Callable[[ModelAckMessage], None]
RequestFn = Callable[[ModelChunkRequestMessage], None]
SwitchFn = Callable[[EdgeModel], None]


class RolloutFailed(Exception):
    """A step of the rollout failed; the message is the reason reported in the ack."""


class RolloutClient(threading.Thread):
    def __init__(
        self,
        slots: ModelSlots,
        public_key: Ed25519PublicKey | None,
        *,
        ack: AckFn,
        request: RequestFn,
        switch: SwitchFn,
        threads: int = 2,
        accelerator: Accelerator | None = None,
        chunk_timeout: float = 5.0,
        max_rounds: int = 20,
    ) -> None:
        super().__init__(name="model-rollout", daemon=True)
        self.slots = slots
        self.public_key = public_key
        self.ledger = OfferLedger(slots.root / "offers.json")
        self._ack, self._request, self._switch = ack, request, switch
        self.threads = threads
        self.accelerator = accelerator
        self.chunk_timeout = chunk_timeout
        self.max_rounds = max_rounds
        self._offers: queue.Queue[ModelOfferMessage | None] = queue.Queue()
        self._download: Download | None = None
        self.ignored_chunks = 0
        self._stopping = threading.Event()

    # -- from paho's thread -----------------------------------------------------------------------
    def offer(self, message: ModelOfferMessage) -> None:
        self._offers.put(message)

    def chunk(self, header: ModelChunkHeader, body: bytes) -> None:
        download = self._download
        if download is None or header.sha256 != download.manifest.sha256:
            self.ignored_chunks += 1
            return
        if not download.store(header, body):
            self.ignored_chunks += 1

    def stop(self) -> None:
        """Stop, also in the middle of a download (what was received stays on disk)."""
        self._stopping.set()
        self._offers.put(None)
        download = self._download
        if download is not None:
            download.progress.set()
        self.join(timeout=10)

    # -- worker ----------------------------------------------------------------------------------
    def run(self) -> None:
        while (offer := self._offers.get()) is not None:
            manifest = offer.manifest
            try:
                self._apply(offer)
            except RolloutFailed as exc:
                logger.error("model %s %s rejected: %s", manifest.name, manifest.version, exc)
                self._report(offer, "failed", str(exc))
            except Exception as exc:  # disk full, a golden image that is not base64...: this
                # thread serves every later offer too, so it reports the offer failed and lives on
                logger.exception("model %s %s failed", manifest.name, manifest.version)
                self._report(offer, "failed", f"unexpected error: {type(exc).__name__}: {exc}")
            finally:
                self._download = None

    def _report(self, offer: ModelOfferMessage, status: str, detail: str = "") -> None:
        m = offer.manifest
        self._ack(
            ModelAckMessage(
                rollout_id=offer.rollout_id,
                version=m.version,
                sha256=m.sha256,
                status=status,
                detail=detail[:1024],
            )
        )

    def _apply(self, offer: ModelOfferMessage) -> None:
        m = offer.manifest
        if self.public_key is None:
            raise RolloutFailed("no model_public_key configured: refusing to install models")
        try:
            verify_manifest(m, self.public_key)
            self.ledger.admit(m)  # signed, but still meant: not a replay, not expired
        except (ContractError, OfferRefused) as exc:
            raise RolloutFailed(str(exc)) from exc
        active = self.slots.active
        if active is not None and active.sha256 == m.sha256:
            self._report(offer, "applied", "already active")
            return
        self._report(offer, "downloading")
        download = Download(self.slots.root / "staging", m)
        self._download = download
        self._fetch(download)
        content = download.content()
        try:
            verify_content(m, content)
        except ContractError as exc:
            download.discard()
            raise RolloutFailed(str(exc)) from exc
        runtime, card = self._smoke_test(m, content)
        self._report(offer, "verified")
        self.slots.install(content, m, card)
        download.discard()
        self._switch(runtime)
        self._report(offer, "applied")
        logger.info("switched to model %s %s (%s)", m.name, m.version, m.sha256[:12])

    def _fetch(self, download: Download) -> None:
        for _ in range(self.max_rounds):
            if self._stopping.is_set():
                raise RolloutFailed("agent stopping; the download resumes after restart")
            missing = download.missing()
            if not missing:
                return
            download.progress.clear()
            self._request(
                ModelChunkRequestMessage(sha256=download.manifest.sha256, indexes=missing[:4096])
            )
            while download.progress.wait(self.chunk_timeout):  # wait while chunks keep coming
                download.progress.clear()
                if not download.missing() or self._stopping.is_set():
                    break
            if not download.missing():
                return
        raise RolloutFailed(
            f"download stalled with {len(download.missing())} of {download.total} chunks missing"
        )

    def _smoke_test(self, m: ModelManifest, content: bytes) -> tuple[EdgeModel, ModelCard]:
        """Load the model (a detector, by its card, has its outputs checked against the card's
        family and anchors) and run its golden cases: a classifier's top-1 must match; a
        detector's golden images must go through it (their top-1 fields do not apply)."""
        import cv2

        try:
            card = ModelCard.model_validate(
                {
                    **m.card,
                    "name": m.name,
                    "version": m.version,
                    "labels": m.labels,
                    "sha256": m.sha256,
                    "size_bytes": m.size_bytes,
                    "temperature": m.temperature,
                }
            )
            runtime = model_from_bytes(
                content, f"{m.name} {m.version}", card, self.threads, self.accelerator
            )
        except (ValidationError, ModelError, AcceleratorError) as exc:
            raise RolloutFailed(f"model does not load: {exc}") from exc
        for i, case in enumerate(m.golden):
            png = np.frombuffer(base64.b64decode(case.image_png_b64), dtype=np.uint8)
            image = cv2.imdecode(png, cv2.IMREAD_UNCHANGED)
            if image is None:
                raise RolloutFailed(f"smoke test {i}: golden image is not a PNG")
            if isinstance(runtime, Detector):
                runtime.detect(np.asarray(image, np.uint8))
                continue
            index, _label, score = runtime.classify(np.asarray(image, np.uint8)).top(1)[0]
            if index != case.top1_index or abs(score - case.top1_score) > case.tolerance:
                raise RolloutFailed(
                    f"smoke test {i} failed: top-1 {index} ({score:.3f}), expected "
                    f"{case.top1_index} ({case.top1_score:.3f} +- {case.tolerance})"
                )
        return runtime, card
