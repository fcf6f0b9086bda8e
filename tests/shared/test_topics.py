from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgecascade.shared.errors import ContractError
from edgecascade.shared.topics import Kind, ModelSub, Topic, shared_filter, topic, topic_filter

ids = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
    min_size=1,
    max_size=64,
).filter(lambda s: s not in (".", ".."))


@given(
    site=ids,
    device=ids,
    prefix=ids,
    kind=st.sampled_from([k for k in Kind if k not in (Kind.MODEL, Kind.CMD, Kind.REPLY)]),
)
def test_round_trip_without_sub(site: str, device: str, prefix: str, kind: Kind) -> None:
    wire = topic(site, device, kind, prefix=prefix)
    assert wire == f"{prefix}/v1/{site}/{device}/{kind.value}"
    assert Topic.parse(wire) == Topic(site, device, kind, None, prefix)


@given(site=ids, device=ids, name=ids)
def test_round_trip_with_sub(site: str, device: str, name: str) -> None:
    for kind in (Kind.CMD, Kind.REPLY):
        wire = topic(site, device, kind, name)
        assert Topic.parse(wire) == Topic(site, device, kind, name)
    assert Topic.parse(topic(site, device, Kind.MODEL, ModelSub.CHUNK)).sub == ModelSub.CHUNK


@pytest.mark.parametrize(
    "bad", ["", "a/b", "+", "#", "a+", "x#", "sp ace", "nul\x00", "é", "a" * 65, ".", ".."]
)
def test_ids_with_wildcards_separators_or_empty_are_refused(bad: str) -> None:
    with pytest.raises(ContractError, match="invalid site id"):
        topic(bad, "cam1", Kind.RESULT)
    with pytest.raises(ContractError, match="invalid device id"):
        topic("site1", bad, Kind.RESULT)


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        ("ec/v1/site/cam/result/extra", "takes no sub-level"),
        ("ec/v2/site/cam/result", "version"),
        ("ec/v1/site/cam/bogus", "unknown kind"),
        ("ec/v1/site/cam", "5 or 6 levels"),
        ("ec/v1/site//result", "invalid device id"),
        ("ec/v1/site/cam/cmd", "needs a sub-level"),
        ("ec/v1/site/cam/model/steal", "unknown model topic"),
    ],
)
def test_parse_names_the_problem(wire: str, reason: str) -> None:
    with pytest.raises(ContractError, match=reason):
        Topic.parse(wire)


def test_filters() -> None:
    assert topic_filter(Kind.RESULT) == "ec/v1/+/+/result"
    assert topic_filter(Kind.STATE, site="s1") == "ec/v1/s1/+/state"
    assert topic_filter(Kind.CMD, site="s1", device="gw") == "ec/v1/s1/gw/cmd/+"
    assert shared_filter("workers", topic_filter(Kind.ESCALATION)) == (
        "$share/workers/ec/v1/+/+/escalation"
    )
    with pytest.raises(ContractError):
        topic_filter(Kind.RESULT, site="+")
