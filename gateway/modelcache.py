"""The site's model artifact cache: fetch a model from the cloud once, serve it to every device.

When the cloud offers a model to a device of the site, the gateway passes the offer on and starts
fetching the artifact for itself (its own ``model/request`` and ``model/chunk`` topics on the
cloud broker), chunk by chunk and resumable across restarts (:class:`shared.chunks.Download`; the
offered manifests are kept on disk too, so a restarted gateway picks up where it stopped).
When every chunk is there the whole file is checked against the manifest's sha256 (and its
signature, when a public key is configured) and moved into the cache. Devices' chunk requests on the
site broker are answered from the cache; while the fetch is still running they get the chunks
already here and ask again for the rest, as they would after any loss.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edgecascade.shared.chunks import Download, chunk_count, read_chunk
from edgecascade.shared.errors import ContractError
from edgecascade.shared.manifest import verify_content, verify_manifest
from edgecascade.shared.model_messages import (
    ModelChunkHeader,
    ModelChunkRequestMessage,
    ModelManifest,
)

logger = logging.getLogger(__name__)

RequestFn = Callable[[ModelChunkRequestMessage], None]


class ModelCache(threading.Thread):
    def __init__(
        self,
        root: Path,
        public_key: Ed25519PublicKey | None,
        request: RequestFn,
        *,
        quota_bytes: int = 2 << 30,
        chunk_timeout: float = 5.0,
        window: int = 256,
    ) -> None:
        super().__init__(name="model-cache", daemon=True)
        self.root = root
        self.public_key = public_key
        self.quota_bytes = quota_bytes
        self.chunk_timeout = chunk_timeout
        self.window = window
        self.counts: Counter[str] = Counter()
        self._request = request
        self._lock = threading.Lock()
        self._downloads: dict[str, Download] = {}
        self._manifests: dict[str, ModelManifest] = {}
        self._asked: dict[str, float] = {}  # last request or chunk: stalled after chunk_timeout
        self._outstanding: dict[str, set[int]] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        root.mkdir(parents=True, exist_ok=True)
        self._manifest_dir = root / "manifests"
        self._manifest_dir.mkdir(exist_ok=True)
        for saved in sorted(self._manifest_dir.glob("*.json")):
            try:
                self._track(ModelManifest.model_validate_json(saved.read_bytes()))
            except (ValueError, OSError) as exc:
                logger.warning("ignoring unreadable cached manifest %s: %s", saved.name, exc)
                saved.unlink(missing_ok=True)

    def path(self, sha256: str) -> Path:
        return self.root / f"{sha256}.tflite"

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    # -- from the cloud ----------------------------------------------------------------------------
    def offer(self, manifest: ModelManifest) -> None:
        """A model was offered to a device here: make sure it is (or will be) in the cache."""
        if self.public_key is not None:
            verify_manifest(manifest, self.public_key)  # ContractError: not fetched, not passed on
        if manifest.size_bytes > self.quota_bytes:
            raise ContractError(
                f"model {manifest.name} {manifest.version} ({manifest.size_bytes} bytes) exceeds "
                f"the cache quota of {self.quota_bytes} bytes"
            )
        saved = self._manifest_dir / f"{manifest.sha256}.json"
        if not saved.exists():
            tmp = saved.with_suffix(".tmp")
            tmp.write_text(manifest.model_dump_json())
            os.replace(tmp, saved)
        self._track(manifest)

    def _track(self, manifest: ModelManifest) -> None:
        """Know ``manifest``; start (or resume) fetching its artifact unless it is cached."""
        with self._lock:
            self._manifests[manifest.sha256] = manifest
            if self.has(manifest.sha256) or manifest.sha256 in self._downloads:
                return
            download = Download(self.root / "staging", manifest)
            self._downloads[manifest.sha256] = download
            self._asked[manifest.sha256] = 0.0
            self._outstanding[manifest.sha256] = set()
        self.counts["fetches.started"] += 1
        logger.info(
            "fetching model %s %s for the site cache (%d of %d chunks already here)",
            manifest.name,
            manifest.version,
            len(download.received),
            download.total,
        )
        self._wake.set()

    def chunk(self, header: ModelChunkHeader, body: bytes) -> None:
        with self._lock:
            download = self._downloads.get(header.sha256)
        if download is None:
            self.counts["chunks.unexpected"] += 1
            return
        if download.store(header, body):
            self.counts["chunks.fetched"] += 1
            self._asked[header.sha256] = time.monotonic()  # progress: not stalled
        else:
            self.counts["chunks.invalid"] += 1
        if not download.missing():
            self._complete(download)
        elif not self._outstanding.get(header.sha256, set()) - download.received:
            self._wake.set()  # the window is in: ask for the next one

    def _complete(self, download: Download) -> None:
        m = download.manifest
        with self._lock:
            if self._downloads.pop(m.sha256, None) is None:
                return  # another chunk completed it first
        try:
            verify_content(m, download.content())
        except ContractError as exc:
            download.discard()
            self._forget(m.sha256)
            self.counts["fetches.failed"] += 1
            logger.error("model %s %s from the cloud is corrupt: %s", m.name, m.version, exc)
            return
        self._make_room(m.size_bytes)
        os.replace(download.part, self.path(m.sha256))
        download.discard()
        self.counts["fetches.completed"] += 1
        logger.info("model %s %s cached (%d bytes)", m.name, m.version, m.size_bytes)

    def _make_room(self, size: int) -> None:
        """Evict the least recently used cached models until ``size`` more bytes fit."""
        cached = sorted(self.root.glob("*.tflite"), key=lambda p: p.stat().st_atime)
        used = sum(p.stat().st_size for p in cached)
        while cached and used + size > self.quota_bytes:
            victim = cached.pop(0)
            used -= victim.stat().st_size
            victim.unlink(missing_ok=True)
            self._forget(victim.stem)
            self.counts["evicted"] += 1

    def _forget(self, sha256: str) -> None:
        """Drop a manifest whose artifact is gone: a new offer fetches it again."""
        with self._lock:
            self._manifests.pop(sha256, None)
        (self._manifest_dir / f"{sha256}.json").unlink(missing_ok=True)

    # -- to the devices ----------------------------------------------------------------------------
    def serve(self, request: ModelChunkRequestMessage) -> list[tuple[ModelChunkHeader, bytes]]:
        """The requested chunks this gateway has: all of them once the model is cached."""
        with self._lock:
            manifest = self._manifests.get(request.sha256)
            download = self._downloads.get(request.sha256)
        if manifest is None:
            self.counts["requests.unknown"] += 1
            return []
        out = []
        if self.has(request.sha256):
            path = self.path(request.sha256)
            for index in request.indexes:
                if index < chunk_count(manifest):
                    out.append(read_chunk(path, manifest, index))
        elif download is not None:
            for index in request.indexes:
                if index in download.received:
                    out.append(read_chunk(download.part, manifest, index))
        self.counts["chunks.served"] += len(out)
        return out

    # -- the fetch loop ----------------------------------------------------------------------------
    def run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            now = time.monotonic()
            with self._lock:
                downloads = list(self._downloads.values())
            for download in downloads:
                sha = download.manifest.sha256
                missing = download.missing()
                window_in = not self._outstanding.get(sha, set()) - download.received
                stalled = now - self._asked.get(sha, 0.0) >= self.chunk_timeout
                if missing and (window_in or stalled):
                    indexes = missing[: self.window]
                    self._asked[sha] = now
                    self._outstanding[sha] = set(indexes)
                    self._request(ModelChunkRequestMessage(sha256=sha, indexes=indexes))

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self.join(timeout=5)
