"""Reader for the IDX files of (Fashion-)MNIST, gzipped or plain."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edgecascade.shared.errors import ModelError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.int16, 0x0C: np.int32, 0x0D: np.float32}


def parse_idx(data: bytes, source: str = "<bytes>") -> npt.NDArray[np.generic]:
    """Decode IDX bytes: two zero bytes, a dtype code, the rank, the dims, then the values."""
    if len(data) < 4 or data[0:2] != b"\x00\x00":
        raise ModelError(f"{source}: not an IDX file (bad magic {data[:4].hex()})")
    code, rank = data[2], data[3]
    if code not in _DTYPES:
        raise ModelError(f"{source}: unknown IDX dtype code 0x{code:02x}")
    header = 4 + 4 * rank
    if len(data) < header:
        raise ModelError(f"{source}: truncated IDX header")
    dims = struct.unpack(f">{rank}I", data[4:header])
    dtype = np.dtype(_DTYPES[code]).newbyteorder(">")
    count = int(np.prod(dims)) if dims else 0
    if len(data) - header != count * dtype.itemsize:
        raise ModelError(
            f"{source}: IDX body has {len(data) - header} bytes, dims {dims} need "
            f"{count * dtype.itemsize}"
        )
    values: npt.NDArray[np.generic] = np.frombuffer(data, dtype=dtype, offset=header)
    return values.reshape(dims).astype(dtype.newbyteorder("="))


def read_idx(path: Path) -> npt.NDArray[np.generic]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read: {exc.strerror}") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ModelError(f"{path}: corrupt gzip data: {exc}") from exc
    return parse_idx(raw, str(path))
