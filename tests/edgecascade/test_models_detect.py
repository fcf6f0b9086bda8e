"""``edgecascade models detect``: the committed face detector on the committed photos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgecascade.cli import main
from tests.utils.paths import EDGE_MODEL, FACE_SHORT, PHOTOS

# The astronaut's face (eyes to chin, cheek to cheek), as in tests/runtime/test_detector.py.
FACE_REGION = (190.0, 100.0, 260.0, 165.0)


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["models", "detect", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_finds_the_astronauts_face_and_none_in_the_coffee(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "boxes.json"
    astronaut, coffee = PHOTOS / "astronaut.jpg", PHOTOS / "coffee.jpg"
    code, out, err = run(capsys, FACE_SHORT, astronaut, coffee, "--output", output)
    assert code == 0, err
    report = json.loads(output.read_text())
    assert [entry["image"] for entry in report] == [str(astronaut), str(coffee)]
    faces = report[0]["detections"]
    assert len(faces) == 1 and faces[0]["label"] == "face" and faces[0]["score"] > 0.8
    x0, y0, x1, y1 = faces[0]["box"]
    # The box holds the face region and is at most 4 times its area.
    assert x0 <= FACE_REGION[0] and y0 <= FACE_REGION[1]
    assert x1 >= FACE_REGION[2] and y1 >= FACE_REGION[3]
    assert (x1 - x0) * (y1 - y0) <= 4 * 70 * 65
    assert report[1]["detections"] == []
    assert "astronaut.jpg" in out and "face" in out and "nothing found" in out


def test_threshold_one_finds_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "boxes.json"
    code, _, err = run(
        capsys, FACE_SHORT, PHOTOS / "astronaut.jpg", "--threshold", "1", "--output", output
    )
    assert code == 0, err
    assert json.loads(output.read_text())[0]["detections"] == []


def test_refuses_a_classifier_a_non_image_and_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, EDGE_MODEL, PHOTOS / "astronaut.jpg")
    assert code == 2 and "its card says task 'classification', not 'detection'" in err
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"GIF89a this is no JPEG")
    code, _, err = run(capsys, FACE_SHORT, fake)
    assert code == 2 and f"{fake}: not an image OpenCV can decode" in err
    code, _, err = run(capsys, FACE_SHORT, tmp_path / "missing.jpg")
    assert code == 2 and "missing.jpg: no such image file" in err
    code, _, err = run(capsys, tmp_path / "none.tflite", PHOTOS / "astronaut.jpg")
    assert code == 2 and "none.tflite" in err
    code, _, err = run(capsys, FACE_SHORT, PHOTOS / "coffee.jpg", "--threshold", "1.5")
    assert code == 2 and "--threshold 1.5" in err
