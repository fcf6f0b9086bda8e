"""A model artifact assembled from chunks on disk, resumable across restarts; and serving one.

The device (:mod:`edge_agent.rollout`) and the site gateway's model cache both fetch artifacts
this way: chunks arrive in any order, each is written at its offset in ``<sha256>.part`` and its
index recorded in ``<sha256>.got``, so a restarted process asks only for what it still misses.
"""

from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path

from edgecascade.shared.model_messages import ModelChunkHeader, ModelManifest


class Download:
    """One model being assembled in ``<slots>/staging``; survives restarts."""

    def __init__(self, root: Path, manifest: ModelManifest) -> None:
        self.manifest = manifest
        self.total = math.ceil(manifest.size_bytes / manifest.chunk_size)
        root.mkdir(parents=True, exist_ok=True)
        self.part = root / f"{manifest.sha256}.part"
        self.index_file = root / f"{manifest.sha256}.got"
        if not self.part.exists() or self.part.stat().st_size != manifest.size_bytes:
            with self.part.open("wb") as fh:
                fh.truncate(manifest.size_bytes)
            self.index_file.unlink(missing_ok=True)
        try:
            self.received = set(json.loads(self.index_file.read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            self.received = set()
        self.progress = threading.Event()

    def missing(self) -> list[int]:
        return [i for i in range(self.total) if i not in self.received]

    def store(self, header: ModelChunkHeader, body: bytes) -> bool:
        m = self.manifest
        expected = min(m.chunk_size, m.size_bytes - header.index * m.chunk_size)
        if header.total != self.total or header.index >= self.total or len(body) != expected:
            return False
        fd = os.open(self.part, os.O_WRONLY)
        try:
            os.pwrite(fd, body, header.index * m.chunk_size)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.received.add(header.index)
        tmp = self.index_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted(self.received)))
        os.replace(tmp, self.index_file)
        self.progress.set()
        return True

    def content(self) -> bytes:
        return self.part.read_bytes()

    def discard(self) -> None:
        self.part.unlink(missing_ok=True)
        self.index_file.unlink(missing_ok=True)


def chunk_count(manifest: ModelManifest) -> int:
    return math.ceil(manifest.size_bytes / manifest.chunk_size)


def read_chunk(path: Path, manifest: ModelManifest, index: int) -> tuple[ModelChunkHeader, bytes]:
    """Chunk ``index`` of the complete artifact at ``path``, ready for the frame codec."""
    total = chunk_count(manifest)
    if not 0 <= index < total:
        raise ValueError(f"chunk index {index} is outside 0..{total - 1}")
    with path.open("rb") as fh:
        fh.seek(index * manifest.chunk_size)
        body = fh.read(manifest.chunk_size)
    return ModelChunkHeader(sha256=manifest.sha256, index=index, total=total), body
