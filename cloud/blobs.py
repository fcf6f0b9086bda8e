"""The blob store: escalated frames as files, ``<root>/<site>/<device>/<msg_id>.<ext>``.

Writes are atomic (a temporary file in the same directory, fsync, ``os.replace``), so a file that
exists is complete and a replayed message can skip it. Rows keep the path relative to the root.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath

from edgecascade.shared.errors import ContractError

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


class BlobStore:
    """Frames on the local filesystem under ``root``."""

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
        return self.path(key).read_bytes()
