from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from edgecascade.modelzoo.idx import parse_idx, read_idx
from edgecascade.shared.errors import ModelError


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    header = b"\x00\x00" + bytes([code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def test_round_trip_images_and_labels(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 1], dtype=np.uint8)
    assert np.array_equal(parse_idx(idx_bytes(images)), images)
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(idx_bytes(labels)))
    assert np.array_equal(read_idx(path), labels)
    ints = np.array([[1, -2], [300, 4]], dtype=np.int32)
    assert np.array_equal(parse_idx(idx_bytes(ints, 0x0C)), ints)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x01\x02\x08\x01", "bad magic"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "dtype code"),
        (b"\x00\x00\x08\x02\x00\x00", "truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05\x00", "need 5"),
    ],
)
def test_bad_files_name_the_problem(data: bytes, reason: str) -> None:
    with pytest.raises(ModelError, match=reason):
        parse_idx(data, "x.idx")
