"""Tag expressions: what they match, and errors that name the position."""

from __future__ import annotations

from typing import Any

import pytest

from edgecascade.cloud.db.models import Device
from edgecascade.cloud.errors import FleetInvalid, RolloutInvalid
from edgecascade.cloud.fleet.configs import Target
from edgecascade.cloud.fleet.tags import TagSyntaxError, check_tag, parse
from edgecascade.cloud.rollouts.plan import RolloutRequest, tagged


@pytest.mark.parametrize(
    ("expression", "tags", "expected"),
    [
        ("zone:north", {"zone:north"}, True),
        ("zone:north", {"zone:south"}, False),
        ("zone:north and not model:old", {"zone:north"}, True),
        ("zone:north and not model:old", {"zone:north", "model:old"}, False),
        ("zone:north or zone:south and pilot", {"zone:north"}, True),  # and binds tighter
        ("(zone:north or zone:south) and pilot", {"zone:north"}, False),
        ("(zone:north or zone:south) and pilot", {"zone:south", "pilot"}, True),
        ("not not pilot", {"pilot"}, True),
        ("  pilot  ", set(), False),
    ],
)
def test_an_expression_matches_the_tag_sets_it_says(
    expression: str, tags: set[str], expected: bool
) -> None:
    assert parse(expression).matches(frozenset(tags)) is expected


@pytest.mark.parametrize(
    ("expression", "position", "problem"),
    [
        ("zone:north and", 15, "expected a tag, 'not' or '(', found the end"),
        ("zone:north and (pilot", 22, "expected ')', found the end"),
        ("zone:north pilot", 12, "expected 'and', 'or' or the end, found 'pilot'"),
        ("zone:north & pilot", 12, "unexpected character '&'"),
        ("", 1, "expected a tag, 'not' or '(', found the end"),
        (") or a", 1, "expected a tag, 'not' or '(', found ')'"),
        ("a:b:c", 1, "tag 'a:b:c' is not valid"),
        ("not " * 40 + "a", 129, "nested too deeply"),
    ],
)
def test_an_expression_that_does_not_parse_names_the_position(
    expression: str, position: int, problem: str
) -> None:
    with pytest.raises(TagSyntaxError) as caught:
        parse(expression)
    assert caught.value.position == position
    assert problem in str(caught.value) and f"at position {position}" in str(caught.value)


def test_tags_are_words_or_name_value_pairs() -> None:
    assert check_tag("zone:north") == "zone:north" and check_tag("pilot") == "pilot"
    for bad in ("and", "a b", "zone:", "x" * 65, "a/b"):
        with pytest.raises(ValueError, match="is not valid"):
            check_tag(bad)


def test_a_target_names_a_site_a_tag_expression_or_a_site_s_devices() -> None:
    assert Target("s1").matches("s1", "cam1", [])
    assert not Target("s1").matches("s2", "cam1", [])
    assert Target(tags="pilot").matches("s2", "cam9", ["pilot"])
    assert not Target("s1", tags="pilot").matches("s2", "cam9", ["pilot"])
    assert Target("s1", devices=("cam2",)).matches("s1", "cam2", [])
    assert not Target("s1", devices=("cam2",)).matches("s1", "cam1", [])
    for bad, reason in [
        (Target(), "name a site"),
        (Target(devices=("cam1",)), "needs the site"),
        (Target("s1", "pilot", ("cam1",)), "not both"),
    ]:
        with pytest.raises(FleetInvalid, match=reason):
            bad.check()


def test_a_rollout_takes_the_cameras_whose_tags_match() -> None:
    cameras = [Device(site_id="s1", device_id=d) for d in ("cam1", "cam2", "cam3")]
    tags = {"cam1": ["zone:north"], "cam2": ["zone:north", "model:old"]}

    def chosen(**target: Any) -> list[str]:
        request = RolloutRequest(model_name="m", model_version="2", site="s1", **target)
        return [d.device_id for d in tagged(request, cameras, tags)]

    assert chosen() == ["cam1", "cam2", "cam3"]
    assert chosen(tags="zone:north and not model:old") == ["cam1"]
    assert chosen(tags="not zone:north") == ["cam3"]
    with pytest.raises(ValueError, match="at position 12"):  # the request itself: a 422
        chosen(tags="zone:north (")
    with pytest.raises(RolloutInvalid, match="not both"):
        chosen(tags="zone:north", devices=["cam1"])
