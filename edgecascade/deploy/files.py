"""Writing deployment files: whole or not at all, secrets readable by their owner only."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_file(path: Path, text: str | bytes, mode: int = 0o644) -> Path:
    """Replace ``path`` atomically with ``text``; the file never exists with looser permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode() if isinstance(text, str) else text
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
