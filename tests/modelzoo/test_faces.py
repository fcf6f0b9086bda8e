"""``models build faces``: the committed face detectors are what the build writes from the wheel."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from edgecascade.modelzoo import faces
from edgecascade.shared.errors import ModelError
from tests.utils.paths import REPO

COMMITTED = REPO / "models" / "faces"


def _wheel(path: Path) -> Path:
    """A wheel-shaped zip holding the committed models at their paths inside mediapipe's wheel."""
    with zipfile.ZipFile(path, "w") as archive:
        for stem, (inner, _) in faces.MODELS.items():
            archive.write(COMMITTED / f"{stem}.tflite", faces.INSIDE + inner)
    return path


def test_build_rewrites_the_committed_folder_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "faces"
    cards = faces.build(out, _wheel(tmp_path / "mediapipe.whl"))
    assert sorted(cards) == ["face_full_range", "face_short_range"]
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(p.name for p in COMMITTED.iterdir())
    for name in written:
        assert (out / name).read_bytes() == (COMMITTED / name).read_bytes(), name
    assert cards["face_short_range"].source.endswith(
        "mediapipe/modules/face_detection/face_detection_short_range.tflite"
    )


def test_a_wheel_without_the_models_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "other.whl"
    zipfile.ZipFile(empty, "w").close()
    with pytest.raises(ModelError, match=r"other.whl: has no mediapipe/modules/face_detection/"):
        faces.build(tmp_path / "out", empty)
    (tmp_path / "text.whl").write_text("not a zip")
    with pytest.raises(ModelError, match=r"text.whl: not a readable mediapipe wheel"):
        faces.build(tmp_path / "out", tmp_path / "text.whl")


def test_offline_without_a_wheel_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip as it is offline: no index to ask
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    with pytest.raises(ModelError, match=r"cannot download the mediapipe 0.10.14 wheel.*--wheel"):
        faces.build(tmp_path / "out", None)
    assert not (tmp_path / "out").exists()
