"""``models build faces``: the committed face detectors are what the build writes from the wheel."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from edgecascade.modelzoo import faces, faces_ssd
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
    assert sorted(cards) == ["face_full_range", "face_short_range", "face_short_range_ssd"]
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(p.name for p in COMMITTED.iterdir())
    for name in written:
        assert (out / name).read_bytes() == (COMMITTED / name).read_bytes(), name
    assert cards["face_short_range"].source.endswith(
        "mediapipe/modules/face_detection/face_detection_short_range.tflite"
    )
    ssd = cards["face_short_range_ssd"]
    assert ssd.detection is not None and ssd.detection.family == "ssd"
    assert ssd.license == cards["face_short_range"].license == "Apache-2.0 (mediapipe)"
    assert "face_detection_short_range.tflite" in ssd.source and ssd.labels == ["face"]


def test_the_ssd_build_is_reproducible_and_checked() -> None:
    """Built twice from the committed short-range model: the same bytes, the committed ones."""
    content = (COMMITTED / "face_short_range.tflite").read_bytes()
    spec = faces.MODELS["face_short_range"][1]
    built = faces_ssd.ssd_model(content, spec)
    assert built == faces_ssd.ssd_model(content, spec)
    assert built == (COMMITTED / "face_short_range_ssd.tflite").read_bytes()
    assert faces_ssd.OPERATOR.encode() in built
    full = faces.MODELS["face_full_range"][1]  # 2304 anchors: not the short-range model's 896
    with pytest.raises(ModelError, match=r"raw outputs \[1, 2304, 16\].*\(1, 896, 16\)"):
        faces_ssd.ssd_model(content, full)


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
