"""The verdict dataset format: written, read back, and every kind of bad input refused clearly."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from edgecascade.cloud.dataset import (
    SampleSplit,
    holdout,
    read_dataset,
    write_dataset,
)
from edgecascade.cloud.errors import DatasetError
from tests.utils.paths import EVAL_SAMPLE
from tests.utils.verdicts import make_sample

LABELS = ["cat", "dog", "bird"]


@pytest.fixture
def png() -> bytes:
    return next(EVAL_SAMPLE.glob("bag/*.png")).read_bytes()


@pytest.fixture
def dataset(tmp_path: Path, png: bytes) -> Path:
    dest = tmp_path / "ds"
    items = [
        (make_sample(f"id-{n}", LABELS[n % 3], LABELS, captured_at=100.0 - n), png)
        for n in range(12)
    ]
    write_dataset(dest, labels=LABELS, items=items, snapshot_id="snap-1", created_at=5.0)
    return dest


def test_holdout_is_a_stable_fifth_of_the_ids() -> None:
    ids = [f"msg-{n}" for n in range(5000)]
    share = sum(holdout(i) for i in ids) / len(ids)
    assert 0.18 < share < 0.22
    assert [holdout(i) for i in ids[:50]] == [holdout(i) for i in ids[:50]]
    # sha256("msg-0") mod 100 computed independently of the implementation
    import hashlib

    assert holdout("msg-0") == (int(hashlib.sha256(b"msg-0").hexdigest(), 16) % 100 < 20)


def test_round_trip_sorted_by_capture_time(dataset: Path) -> None:
    manifest, samples = read_dataset(dataset)
    assert manifest.snapshot_id == "snap-1"
    assert manifest.count == len(samples) == 12
    assert manifest.labels == LABELS
    assert [s.captured_at for s in samples] == sorted(s.captured_at for s in samples)
    assert {s.split for s in samples} <= {SampleSplit.TRAIN, SampleSplit.HOLDOUT}
    assert all((dataset / s.file).exists() for s in samples)
    assert (dataset / "images" / "cat").is_dir()  # ImageFolder layout


def test_existing_destination_is_refused(dataset: Path) -> None:
    with pytest.raises(DatasetError, match="already exists"):
        write_dataset(dataset, labels=LABELS, items=[])


def test_writer_refuses_a_sample_outside_the_labels(tmp_path: Path, png: bytes) -> None:
    bad = make_sample("x", "cat", LABELS).model_copy(update={"label": "fish"})
    with pytest.raises(DatasetError, match="fish"):
        write_dataset(tmp_path / "ds", labels=LABELS, items=[(bad, png)])
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def _rewrite_line(dataset: Path, line: int, text: str) -> None:
    """Replace one manifest line and keep dataset.json's sha256 in step (a consistent export)."""
    import hashlib

    path = dataset / "manifest.jsonl"
    lines = path.read_text().splitlines()
    lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n")
    meta = json.loads((dataset / "dataset.json").read_text())
    meta["manifest_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (dataset / "dataset.json").write_text(json.dumps(meta))


def _edit_line(dataset: Path, line: int, **changes: object) -> None:
    raw = json.loads((dataset / "manifest.jsonl").read_text().splitlines()[line - 1])
    raw.update(changes)
    _rewrite_line(dataset, line, json.dumps(raw))


def test_corrupt_line_names_file_and_line(dataset: Path) -> None:
    _rewrite_line(dataset, 3, '{"id": "broken"')
    with pytest.raises(DatasetError, match=r"manifest.jsonl line 3: .*"):
        read_dataset(dataset)


def test_label_not_in_labels(dataset: Path) -> None:
    _edit_line(dataset, 2, label="fish")
    with pytest.raises(DatasetError, match=r"line 2: label 'fish' is not one"):
        read_dataset(dataset)


def test_label_index_must_match(dataset: Path) -> None:
    _edit_line(dataset, 1, label_index=7)
    with pytest.raises(DatasetError, match=r"line 1: label_index 7"):
        read_dataset(dataset)


@pytest.mark.parametrize(
    ("soft", "message"),
    [
        ([0.5, 0.5], "2 values for 3 labels"),
        ([0.5, 0.2, 0.2], "sums to 0.9000"),
        ([1.2, -0.1, -0.1], "negative"),
    ],
)
def test_bad_soft_vector(dataset: Path, soft: list[float], message: str) -> None:
    _edit_line(dataset, 4, soft=soft)
    with pytest.raises(DatasetError, match=rf"line 4: soft .*{message}"):
        read_dataset(dataset)


def test_split_must_follow_the_id(dataset: Path) -> None:
    raw = json.loads((dataset / "manifest.jsonl").read_text().splitlines()[0])
    flipped = "train" if raw["split"] == "holdout" else "holdout"
    _edit_line(dataset, 1, split=flipped)
    with pytest.raises(DatasetError, match="contradicts holdout"):
        read_dataset(dataset)


def test_missing_image(dataset: Path) -> None:
    _, samples = read_dataset(dataset)
    (dataset / samples[5].file).unlink()
    with pytest.raises(DatasetError, match=rf"line 6: image .*{samples[5].id}.png cannot be read"):
        read_dataset(dataset)
    read_dataset(dataset, check_images=False)  # the manifest alone is still valid


def test_undecodable_image(dataset: Path) -> None:
    _, samples = read_dataset(dataset)
    (dataset / samples[0].file).write_bytes(b"\x89PNG not really")
    with pytest.raises(DatasetError, match=r"line 1: image .* not a decodable"):
        read_dataset(dataset)


def test_path_escaping_the_dataset_is_refused(dataset: Path) -> None:
    _edit_line(dataset, 1, file="../../etc/passwd")
    with pytest.raises(DatasetError, match="not inside images/"):
        read_dataset(dataset)


def test_tampered_manifest_and_bad_description(dataset: Path) -> None:
    path = dataset / "manifest.jsonl"
    path.write_text(path.read_text() + "\n")
    with pytest.raises(DatasetError, match="sha256 differs"):
        read_dataset(dataset)
    (dataset / "dataset.json").write_text('{"format": "other"}')
    with pytest.raises(DatasetError, match=r"dataset.json: invalid dataset description"):
        read_dataset(dataset)


def test_duplicate_ids_and_count(dataset: Path) -> None:
    first = (dataset / "manifest.jsonl").read_text().splitlines()[0]
    _rewrite_line(dataset, 2, first)
    with pytest.raises(DatasetError, match="line 2: duplicate id"):
        read_dataset(dataset)


def test_no_numpy_or_torch_at_import() -> None:
    import subprocess

    code = (
        "import sys, cloud.dataset, cloud.training_gates; "
        "print('numpy' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
