"""Escalation rules on real model outputs, per-class thresholds, budget, cooldown, payloads."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecascade.benchmarks.camera_frames import write_camera_frames
from edgecascade.edge_agent.escalation import escalation_payload
from edgecascade.edge_agent.policy import EscalationPolicy, dhash, hamming
from edgecascade.edge_agent.settings import EscalationSettings
from edgecascade.edge_agent.sources import Frame
from edgecascade.shared.codec import decode
from edgecascade.shared.errors import ConfigError
from edgecascade.shared.runtime.datasets import LabelledFolder
from edgecascade.shared.runtime.runtime import ModelRuntime
from edgecascade.shared.topics import Kind, Topic
from tests.utils.factories import make_result
from tests.utils.paths import EDGE_MODEL, EVAL_SAMPLE

UNLIMITED = {"budget_per_minute": 1e6, "burst": 100_000, "cooldown_s": 0.0}


@pytest.fixture(scope="module")
def outputs() -> list[tuple[np.ndarray, str]]:
    runtime = ModelRuntime.load(EDGE_MODEL)
    data = LabelledFolder(EVAL_SAMPLE, runtime.labels)
    out = []
    for _path, image, _target in list(data)[::10]:
        result = runtime.classify(image)
        out.append((result.probabilities, result.top(1)[0][1]))
    return out


def escalated(policy: EscalationPolicy, outputs: list[tuple[np.ndarray, str]]) -> set[int]:
    return {i for i, (p, label) in enumerate(outputs) if policy.decide(p, label).escalate}


@pytest.mark.parametrize("mode", ["max_prob", "margin", "entropy", "any"])
def test_each_rule_escalates_exactly_its_frames(
    mode: str, outputs: list[tuple[np.ndarray, str]]
) -> None:
    settings = EscalationSettings(mode=mode, threshold=0.9, margin=0.5, entropy=0.2, **UNLIMITED)
    expected = set()
    for i, (p, _label) in enumerate(outputs):
        q = np.sort(p.astype(np.float64))[::-1]
        entropy = -(np.clip(p, 1e-12, 1) * np.log(np.clip(p, 1e-12, 1))).sum() / np.log(p.size)
        fires = {"max_prob": q[0] < 0.9, "margin": q[0] - q[1] < 0.5, "entropy": entropy > 0.2}
        if fires[mode] if mode != "any" else any(fires.values()):
            expected.add(i)
    assert 0 < len(expected) < len(outputs)
    assert escalated(EscalationPolicy(settings), outputs) == expected


def test_always_escalates_every_frame_even_a_certain_one(
    outputs: list[tuple[np.ndarray, str]],
) -> None:
    policy = EscalationPolicy(EscalationSettings(mode="always", **UNLIMITED))
    assert escalated(policy, outputs) == set(range(len(outputs)))
    certain = np.zeros(10, dtype=np.float32)
    certain[3] = 1.0  # a top-1 of exactly 1.0 fires no threshold; cloud-only must still send it
    decision = policy.decide(certain, "dress")
    assert decision.escalate and decision.reason == "always"
    # The budget still applies: cloud-only is measured with it off, not bypassed by the mode.
    budgeted = EscalationPolicy(
        EscalationSettings(mode="always", budget_per_minute=0, burst=2, cooldown_s=0)
    )
    assert [budgeted.decide(certain, "dress").escalate for _ in range(3)] == [True, True, False]


def test_per_class_thresholds(outputs: list[tuple[np.ndarray, str]]) -> None:
    settings = EscalationSettings(threshold=0.0, class_thresholds={"shirt": 0.99}, **UNLIMITED)
    policy = EscalationPolicy(settings, labels=("shirt", "bag"))
    expected = {i for i, (p, label) in enumerate(outputs) if label == "shirt" and p.max() < 0.99}
    assert expected and escalated(policy, outputs) == expected
    with pytest.raises(ConfigError, match="spaceship"):
        EscalationPolicy(EscalationSettings(class_thresholds={"spaceship": 0.5}), labels=("shirt",))


def test_budget_refuses_and_counts() -> None:
    now = [0.0]
    settings = EscalationSettings(threshold=1.0, budget_per_minute=60, burst=3, cooldown_s=0)
    policy = EscalationPolicy(settings, clock=lambda: now[0])
    unsure = np.array([0.5, 0.5], dtype=np.float32)
    assert [policy.decide(unsure, "a").escalate for _ in range(5)] == [True] * 3 + [False] * 2
    assert policy.over_budget == 2
    now[0] += 1.0  # one token per second
    assert policy.decide(unsure, "a").escalate
    assert not policy.decide(unsure, "a").escalate


def test_cooldown_skips_near_duplicates_only() -> None:
    now = [0.0]
    settings = EscalationSettings(
        threshold=1.0,
        cooldown_s=10,
        cooldown_distance=4,
        **{"budget_per_minute": 1e6, "burst": 1000},
    )
    policy = EscalationPolicy(settings, clock=lambda: now[0])
    files = sorted(EVAL_SAMPLE.rglob("*.png"))
    bag = cv2.imread(str(next(f for f in files if f.parent.name == "bag")), cv2.IMREAD_GRAYSCALE)
    boot = cv2.imread(str(next(f for f in files if f.parent.name == "trouser")), 0)
    assert bag is not None and boot is not None
    bag8, boot8 = bag.astype(np.uint8), boot.astype(np.uint8)
    assert hamming(dhash(bag8), dhash(boot8)) > 4
    unsure = np.array([0.5, 0.5], dtype=np.float32)
    assert policy.decide(unsure, "a", bag8).escalate
    assert not policy.decide(unsure, "a", bag8).escalate  # the same frame again
    assert policy.decide(unsure, "a", boot8).escalate  # a different one
    assert policy.cooled_down == 1
    now[0] += 11  # the window has passed
    assert policy.decide(unsure, "a", bag8).escalate


def test_payload_options_roi_downscale_quality() -> None:
    image = np.tile(np.arange(256, dtype=np.uint8), (200, 2))[:, :400]
    bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    result = make_result()
    settings = EscalationSettings(roi=(100, 20, 300, 150), max_side=120, jpeg_quality=50)
    frame = Frame("f", bgr.astype(np.uint8), 0.0)
    header, payload = escalation_payload(frame, result, "test", settings)
    assert header.roi == (100, 20, 300, 150)
    assert (header.width, header.height) == (120, 60)
    assert header.result_id == result.msg_id
    body = decode(Topic("s", "d", Kind.ESCALATION), payload).body
    decoded = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape == (60, 120, 3)
    _, better = escalation_payload(
        frame, result, "test", settings.model_copy(update={"jpeg_quality": 95})
    )
    assert len(better) > len(payload)
    with pytest.raises(ValueError, match="roi"):
        EscalationSettings(roi=(0, 0, 0, 10))


def test_audit_samples_sure_frames_only_inside_the_budget() -> None:
    now = [0.0]
    settings = EscalationSettings(
        threshold=0.6, budget_per_minute=60, burst=3, cooldown_s=0, audit_fraction=1.0
    )
    policy = EscalationPolicy(settings, clock=lambda: now[0])
    sure = np.array([0.95, 0.05], dtype=np.float32)
    unsure = np.array([0.5, 0.5], dtype=np.float32)
    escalated = policy.decide(unsure, "a")
    assert escalated.escalate and not policy.audit(escalated)  # escalated, not audited too
    audited = [policy.audit(policy.decide(sure, "a")) for _ in range(4)]
    assert audited == [True, True, False, False]  # the escalation spent the first token
    assert policy.audits == 2
    refused = policy.decide(unsure, "a")
    assert refused.reason == "over budget" and not policy.audit(refused)  # not sure: no audit
    now[0] += 1.0  # a token again
    assert policy.audit(policy.decide(sure, "a"))


def test_audit_fraction_draws_a_seeded_sample() -> None:
    sure = np.array([0.95, 0.05], dtype=np.float32)

    def draws(fraction: float, seed: int) -> list[bool]:
        settings = EscalationSettings(
            budget_per_minute=1e6, burst=10_000, audit_fraction=fraction, audit_seed=seed
        )
        policy = EscalationPolicy(settings)
        return [policy.audit(policy.decide(sure, "a")) for _ in range(2000)]

    assert not any(draws(0.0, 1))
    assert all(draws(1.0, 1))
    sample = draws(0.1, 7)
    assert sample == draws(0.1, 7) != draws(0.1, 8)
    assert 150 < sum(sample) < 250
    with pytest.raises(ValueError, match="audit_fraction"):
        EscalationSettings(audit_fraction=1.5)


def test_dhash_of_camera_sized_frames_holds_near_duplicates(tmp_path: Path) -> None:
    """The cut-to-whole-cells hash of 640x360 frames: the same scene with fresh sensor noise
    stays within the default cooldown distance (4 bits); point sampling gave 7-8 bits here."""
    frames = write_camera_frames(EVAL_SAMPLE, tmp_path, 6, size=(640, 360))
    rng = np.random.default_rng(1)
    for path in sorted(frames.rglob("*.jpg")):
        scene = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert scene is not None and scene.shape == (360, 640, 3)
        noise = rng.normal(0, 4, scene.shape)
        again = np.clip(scene.astype(np.float64) + noise, 0, 255).astype(np.uint8)
        assert hamming(dhash(scene.astype(np.uint8)), dhash(again)) <= 4, path.name
