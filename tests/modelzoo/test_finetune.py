"""The trainer with torch: the loss, determinism, a real fine-tune of the committed edge model on
drifted verdicts through ``edgecascade cloud train``, and a SIGKILLed run that leaves nothing."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_quantizer")

from edgecascade.cli import main  # noqa: E402
from edgecascade.cloud.dataset import read_dataset  # noqa: E402
from edgecascade.modelzoo.architectures import ARCHITECTURES  # noqa: E402
from edgecascade.modelzoo.fashion import DATA_DIR  # noqa: E402
from edgecascade.modelzoo.finetune import FinetuneOptions, load_parent, sample_loss, train_loop  # noqa: E402
from edgecascade.modelzoo.recover import fashion_edge_state_dict  # noqa: E402
from edgecascade.shared.runtime.card import ModelCard  # noqa: E402
from edgecascade.shared.runtime.datasets import LabelledFolder  # noqa: E402
from edgecascade.shared.runtime.runtime import ModelRuntime  # noqa: E402
from tests.utils.paths import EDGE_MODEL, EDGE_MODEL_FP32, EVAL_SAMPLE, REPO  # noqa: E402
from tests.utils.verdicts import fashion_drift_dataset  # noqa: E402

pytestmark = [
    pytest.mark.skipif(
        not (DATA_DIR / "train-images-idx3-ubyte.gz").exists(),
        reason="needs Debian's dataset-fashion-mnist (the replay data)",
    ),
    # the converters' own deprecations, not ours
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning:ai_edge_litert.*"),
    pytest.mark.filterwarnings("ignore::UserWarning:torch.*"),
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("verdicts") / "dataset"
    fashion_drift_dataset(dest, 500)
    return dest


def test_loss_is_distillation_for_cloud_labels_and_ce_for_the_rest() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.2, 0.1]])
    labels = torch.tensor([0, 2])
    soft = torch.softmax(logits, dim=1)  # the teacher agrees with the student exactly
    options = FinetuneOptions(alpha=1.0, temperature=1.0)
    distilled = sample_loss(logits, labels, soft, torch.tensor([True, True]), options)
    assert torch.allclose(distilled, torch.zeros(2), atol=1e-6)
    plain = sample_loss(logits, labels, soft, torch.tensor([False, False]), options)
    ce = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    assert torch.allclose(plain, ce)
    half = sample_loss(
        logits, labels, soft, torch.tensor([True, False]), options.model_copy(update={"alpha": 0.5})
    )
    assert torch.allclose(half, torch.stack([0.5 * ce[0], ce[1]]), atol=1e-6)


def test_training_is_deterministic_with_a_seed(dataset: Path) -> None:
    _, samples = read_dataset(dataset, check_images=False)
    samples = samples[:64]
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 28, 28, 1), dtype=np.uint8)
    replay_x = rng.integers(0, 256, (200, 28, 28, 1), dtype=np.uint8)
    replay_y = rng.integers(0, 10, 200).astype(np.int64)
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        net = ARCHITECTURES["fashion-edge-cnn"].build()
        train_loop(net, x, samples, replay_x, replay_y, FinetuneOptions(epochs=1, batch_size=16))
        weights.append(net.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_committed_edge_weights_are_the_committed_model() -> None:
    """fashion_edge.pt holds the weights of the committed fp32 file: same tensors as read back
    from it, and the torch module computes the same logits as the file through LiteRT."""
    parent = load_parent(EDGE_MODEL)
    state = torch.load(parent.weights, weights_only=True)
    recovered = fashion_edge_state_dict(EDGE_MODEL_FP32)
    assert all(torch.equal(state[k], recovered[k]) for k in recovered)
    net = parent.architecture.build()
    net.load_state_dict(state)
    assert sum(p.numel() for p in net.parameters()) == 9098
    fp32 = ModelRuntime.load(EDGE_MODEL_FP32)
    images = [image for image, _ in itertools.islice(eval_frames(fp32.labels), 100)]
    with torch.no_grad():
        logits = net(torch.from_numpy(np.stack(images).astype(np.float32)[..., None])).numpy()
    litert = np.stack([fp32.invoke_raw(fp32.preprocess(image)) for image in images])
    assert np.abs(logits - litert).max() < 1e-3


def eval_frames(labels: Sequence[str]) -> Iterator[tuple[npt.NDArray[np.uint8], int]]:
    for _, image, target in LabelledFolder(EVAL_SAMPLE, labels):
        yield image, target


def test_cloud_train_beats_the_parent_on_drifted_verdicts(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "child"
    argv = ["cloud", "train", "--dataset", str(dataset), "--parent", str(EDGE_MODEL)]
    options = ["--epochs", "8", "--replay-fraction", "0.75"]
    assert main([*argv, "--out", str(out), *options]) == 0
    printed = capsys.readouterr().out
    with capsys.disabled():
        sys.stdout.write("\n" + printed)
    card = ModelCard.load(out / "fashion_edge_int8.json")
    parent = ModelCard.load(EDGE_MODEL.with_suffix(".json"))
    report = json.loads((out / "report.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == sorted(report["files"])
    assert card.version == "1.1.0-ft.drift200"
    assert card.lineage is not None and card.trainable is not None
    assert card.lineage.parent == "fashion-edge@1.0.0"
    assert card.lineage.parent_sha256 == parent.sha256
    assert (card.lineage.dataset_snapshot_id, card.lineage.dataset_size) == ("drift2000x500", 500)
    assert card.lineage.train_samples + card.lineage.holdout_samples == 500
    assert "cloud train" in card.lineage.command
    runtime = ModelRuntime.load(out / "fashion_edge_int8.tflite")
    assert runtime.sha256 == card.sha256 and runtime.input_spec.tensor.dtype == "int8"
    before, after = card.lineage.before, card.lineage.after
    assert before.holdout_accuracy is not None and after.holdout_accuracy is not None
    assert after.holdout_accuracy > before.holdout_accuracy + 0.05
    assert after.original_accuracy > before.original_accuracy - 0.01
    assert report["result"]["after"] == after.model_dump()


def test_sigkill_mid_epoch_leaves_no_model_and_the_next_run_completes(
    dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "child"
    argv = [sys.executable, "-m", "edgecascade", "cloud", "train", "--dataset", str(dataset)]
    argv += ["--parent", str(EDGE_MODEL), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen(
        [*argv, "--epochs", "500"], stderr=subprocess.PIPE, text=True, env=env, cwd=REPO
    ) as process:
        assert process.stderr is not None
        for line in process.stderr:
            if "epoch 1/500" in line:
                break
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert not out.exists()
    assert len(list(tmp_path.glob(".child.partial-*"))) == 1  # what the killed run left
    finished = subprocess.run(
        [*argv, "--epochs", "1"], capture_output=True, text=True, env=env, cwd=REPO, timeout=120
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "left by a run that did not finish" in finished.stderr
    assert (out / "fashion_edge_int8.tflite").exists() and (out / "report.json").exists()
    assert list(tmp_path.glob(".child.partial-*")) == []


def test_build_writes_the_edge_weights_and_the_trainable_entry(tmp_path: Path) -> None:
    from edgecascade.modelzoo.fashion import build

    cards = build(
        tmp_path, DATA_DIR, epochs_edge=1, epochs_cloud=1, roles=("edge",), epochs_robust=1
    )
    assert sorted(cards) == ["edge_fp32", "edge_int8"]
    assert cards["edge_int8"].trainable == cards["edge_fp32"].trainable
    parent = load_parent(tmp_path / "fashion_edge_int8.tflite")  # checks weights_sha256
    assert parent.weights == tmp_path / "fashion_edge.pt"
    assert parent.architecture.id == "fashion-edge-cnn"
    assert ModelCard.load(tmp_path / "fashion_edge_int8.json").trainable is not None
