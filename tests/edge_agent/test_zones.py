"""Zones: include/exclude polygons in frame fractions, the anchor point, refusals at load."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from edgecascade.edge_agent.settings import AgentSettings, ZoneSettings
from edgecascade.edge_agent.zones import ZoneFilter, inside
from edgecascade.shared.config import load_settings
from edgecascade.shared.errors import ConfigError
from edgecascade.shared.fields import DetectedObject

SQUARE = [(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5)]  # the top left quarter
DOOR = ZoneSettings(name="door", kind="include", points=SQUARE)
STREET = ZoneSettings(name="street", kind="exclude", points=[(0.5, 0.0), (1, 0), (1, 1)])


def obj(x0: float, y0: float, x1: float, y1: float) -> DetectedObject:
    return DetectedObject(label="person", score=0.9, box=(x0, y0, x1, y1))


def test_point_in_polygon() -> None:
    assert inside((0.25, 0.25), SQUARE) and not inside((0.75, 0.25), SQUARE)
    triangle = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]
    assert inside((0.2, 0.2), triangle) and not inside((0.8, 0.8), triangle)


def test_no_zones_keep_everything_unchanged() -> None:
    found = [obj(0, 0, 10, 10), obj(500, 300, 600, 400)]
    assert ZoneFilter([]).apply(found, 640, 480) == found


def test_include_zones_keep_only_what_is_inside_and_name_the_zone() -> None:
    zones = ZoneFilter([DOOR], anchor="center")
    kept = zones.apply([obj(100, 100, 140, 140), obj(400, 300, 440, 340)], 640, 480)
    assert [d.zone for d in kept] == ["door"] and kept[0].box == (100, 100, 140, 140)
    assert zones.outside == 1 and zones.excluded == 0


def test_exclude_zones_drop_and_count() -> None:
    zones = ZoneFilter([STREET], anchor="center")
    kept = zones.apply([obj(600, 20, 630, 50), obj(20, 400, 60, 440)], 640, 480)
    assert kept == [obj(20, 400, 60, 440)] and kept[0].zone is None
    assert zones.excluded == 1 and zones.outside == 0


def test_the_anchor_point_decides() -> None:
    # A tall box whose centre is inside the top left quarter but whose feet are below it.
    standing = obj(100, 100, 140, 300)
    assert ZoneFilter([DOOR], anchor="center").apply([standing], 640, 480)
    bottom = ZoneFilter([DOOR], anchor="bottom_center")
    assert bottom.apply([standing], 640, 480) == [] and bottom.outside == 1


def test_fractions_hold_at_any_resolution() -> None:
    zones = ZoneFilter([DOOR], anchor="center")
    assert zones.apply([obj(100, 100, 140, 140)], 640, 480)[0].zone == "door"
    assert zones.apply([obj(400, 200, 480, 280)], 1280, 720)[0].zone == "door"


def test_bad_polygons_are_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="zone 'door' has 2 point"):
        ZoneSettings(name="door", points=[(0, 0), (1, 1)])
    with pytest.raises(ValidationError, match=r"point \(640.0, 0.0\) is outside 0..1"):
        ZoneSettings(name="door", points=[(0, 0), (640, 0), (0, 1)])
    with pytest.raises(ValidationError, match=r"zones \['door'\] are named more than once"):
        AgentSettings(zones=[DOOR, DOOR.model_copy(update={"kind": "exclude"})])
    with pytest.raises(ValidationError):
        ZoneSettings(name="bad name!", points=SQUARE)
    config = tmp_path / "agent.toml"
    config.write_text(
        '[[zones]]\nname = "door"\nkind = "include"\npoints = [[0, 0], [0.5, 0], [0.5, 0.5]]\n'
        '[[zones]]\nname = "gate"\npoints = [[0, 0], [2, 0], [0, 1]]\n'
    )
    with pytest.raises(ConfigError, match=r"zones.1: .*zone 'gate': point \(2.0, 0.0\)"):
        load_settings(AgentSettings, config)
    config.write_text(config.read_text().replace("[2, 0]", "[1, 0]"))
    loaded = load_settings(AgentSettings, config)
    assert [z.name for z in loaded.zones] == ["door", "gate"]
    assert loaded.zones[0].points == [(0.0, 0.0), (0.5, 0.0), (0.5, 0.5)]
