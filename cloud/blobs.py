"""The blob store: escalated frames (``<site>/<device>/<msg_id>.<ext>``) and model files
(``<sha256>.tflite``, ``<sha256>.pt``) by key, behind one interface with two backends.

:class:`FileBlobStore` (the default) keeps them under a directory: writes are atomic (a temporary
file in the same directory, fsync, ``os.replace``), so a file that exists is complete and a
replayed message can skip it. :class:`~cloud.blobs_s3.S3BlobStore` keeps them in a bucket of an
S3-compatible object store, so several cloud replicas need no shared filesystem (an S3 PUT is
atomic too: an object exists whole or not at all). Rows keep the key, never a path.
:func:`open_blobs` picks the backend from the settings.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal, Protocol

from edgecascade.shared.errors import ContractError

if TYPE_CHECKING:
    from edgecascade.cloud.settings import CloudSettings

EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png"}


def blob_key(site: str, device: str, msg_id: str, content_type: str) -> str:
    """The relative path of a frame; raises :class:`ContractError` for unusable ids.

    Topic ids may be ``.`` or ``..``, which are valid MQTT levels but not safe directory names.
    """
    for value, what in ((site, "site id"), (device, "device id"), (msg_id, "message id")):
        if value in (".", "..") or "/" in value or "\\" in value or not value:
            raise ContractError(f"{what} {value!r} cannot be used as a blob path")
    try:
        ext = EXTENSIONS[content_type]
    except KeyError:
        raise ContractError(f"no blob extension for content type {content_type!r}") from None
    return str(PurePosixPath(site, device, f"{msg_id}.{ext}"))


class BlobNotFound(KeyError):
    """No blob under this key (never stored, or purged)."""


class BlobStore(Protocol):
    """What the cloud needs of a blob store. ``get`` and ``size`` raise :class:`BlobNotFound`
    for a key that is not there; ``put`` of a key that is there changes nothing."""

    def put(self, key: str, data: bytes) -> bool: ...
    def get(self, key: str) -> bytes: ...
    def size(self, key: str) -> int: ...
    def delete(self, key: str) -> None: ...
    def inventory(self) -> Iterator[tuple[str, int]]: ...


class FileBlobStore:
    """Blobs as files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        """The absolute path of a stored blob."""
        return self.root / key

    def put(self, key: str, data: bytes) -> bool:
        """Store ``data`` at ``key`` unless it is already there; True if it was written."""
        target = self.path(key)
        if target.exists():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return True

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def inventory(self) -> Iterator[tuple[str, int]]:
        """Every stored key with its size in bytes (temporary files of unfinished writes left
        out)."""
        if not self.root.exists():
            return
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.startswith(".tmp-"):
                yield path.relative_to(self.root).as_posix(), path.stat().st_size


Area = Literal["frames", "models"]


def open_blobs(settings: CloudSettings, area: Area) -> BlobStore:
    """The store of ``area``: a directory under ``data_dir`` (``blobs`` for frames, ``models``
    for models), or ``<prefix><area>/`` in the configured S3 bucket."""
    if settings.blobs.backend == "s3":
        from edgecascade.cloud.blobs_s3 import S3BlobStore

        return S3BlobStore.from_settings(settings.blobs, area)
    return FileBlobStore(settings.blob_dir if area == "frames" else settings.model_dir)
