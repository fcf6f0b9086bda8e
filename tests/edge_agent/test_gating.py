"""The scene gate's two measures: the whole scene's mean change, or its most changed cell."""

from __future__ import annotations

import numpy as np
import pytest

from edgecascade.edge_agent.gating import SceneGate
from edgecascade.edge_agent.settings import AgentSettings, GatingSettings


def _scene() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(40, 200, size=(720, 1280), dtype=np.uint8)


def test_a_small_local_change_passes_the_max_cell_gate_not_the_mean_one() -> None:
    empty = _scene()
    person = empty.copy()
    person[100:140, 600:640] = 255  # a far person: about one thumbnail cell of 1024
    mean, local = SceneGate(2.0), SceneGate(16.0, "max_cell")
    for gate in (mean, local):
        assert gate.changed(empty)
    assert not mean.changed(person) and mean.skipped == 1
    assert local.changed(person) and local.compared and local.skipped == 0


def test_the_max_cell_gate_skips_noise_below_its_threshold() -> None:
    gate = SceneGate(16.0, "max_cell")
    still = _scene()
    noisy = np.clip(still.astype(np.int16) + 3, 0, 255).astype(np.uint8)  # gain drift
    assert gate.changed(still)
    assert not gate.changed(noisy) and gate.skipped == 1


def test_the_measure_is_a_setting_defaulting_to_mean() -> None:
    assert GatingSettings().measure == "mean"
    settings = AgentSettings.model_validate({"gating": {"enabled": True, "measure": "max_cell"}})
    assert settings.gating.measure == "max_cell"
    with pytest.raises(ValueError, match="max_cell"):
        GatingSettings.model_validate({"measure": "median"})
    with pytest.raises(ValueError, match="'median'"):
        SceneGate(2.0, "median")
