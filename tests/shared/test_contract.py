"""The contract table: complete, consistent with the topic grammar, and what decode enforces."""

from __future__ import annotations

import pytest

from edgecascade.gateway.links import DOWNLINK_CLASSES, UPLINK_CLASSES
from edgecascade.shared.codec import decode, encode
from edgecascade.shared.contract import (
    KINDS,
    NAME,
    Direction,
    Encoding,
    FreeName,
    KindSpec,
    OutboxClass,
    Role,
    queue_class_of,
    spec_for,
    spec_of,
)
from edgecascade.shared.errors import ContractError
from edgecascade.shared.messages import EscalationHeader
from edgecascade.shared.model_messages import ModelChunkHeader
from edgecascade.shared.outbox import DEFAULT_CLASSES
from edgecascade.shared.topics import MODEL_SUBS, Kind, ModelSub, Topic
from tests.fuzz.strategies import SAMPLES
from tests.utils.factories import make_escalation

SPECS = list(KINDS.values())
IDS = [spec.pattern for spec in SPECS]


def _topic(spec: KindSpec) -> Topic:
    """A topic of the row (a free name becomes ``resync``)."""
    sub = "resync" if spec.sub is NAME else spec.level
    return Topic("site1", "cam1", spec.kind, sub)


def test_every_kind_has_a_row_and_every_row_its_own_key() -> None:
    assert {spec.kind for spec in SPECS} == set(Kind)
    for key, spec in KINDS.items():
        assert key == (spec.kind, spec.sub)


def test_every_model_sub_level_has_a_row_and_only_model_rows_use_them() -> None:
    model_rows = {spec.sub for spec in SPECS if spec.kind is Kind.MODEL}
    assert model_rows == set(ModelSub) == MODEL_SUBS
    assert all(isinstance(spec.sub, ModelSub) == (spec.kind is Kind.MODEL) for spec in SPECS)
    assert {spec.kind for spec in SPECS if isinstance(spec.sub, FreeName)} == {Kind.CMD, Kind.REPLY}


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_every_row_is_reachable_from_a_topic(spec: KindSpec) -> None:
    assert spec_for(_topic(spec)) is spec
    assert spec_for(Topic.parse(str(_topic(spec)))) is spec


def test_a_free_name_matches_any_name_and_a_model_sub_level_its_string() -> None:
    assert spec_of(Kind.CMD, "reboot") is spec_of(Kind.CMD, NAME) is KINDS[(Kind.CMD, NAME)]
    assert spec_of(Kind.REPLY, "offer") is KINDS[(Kind.REPLY, NAME)]
    assert spec_of(Kind.MODEL, "offer") is KINDS[(Kind.MODEL, ModelSub.OFFER)]


@pytest.mark.parametrize(
    ("kind", "sub"),
    [
        (Kind.STATE, "x"),
        (Kind.RESULT, ModelSub.OFFER),
        (Kind.CMD, None),
        (Kind.REPLY, None),
        (Kind.MODEL, None),
        (Kind.MODEL, "firmware"),
        (Kind.MODEL, NAME),
    ],
)
def test_a_combination_the_table_lacks_is_a_contract_error(kind: Kind, sub: str | None) -> None:
    with pytest.raises(ContractError, match="the contract has no"):
        spec_of(kind, sub)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_limits_qos_and_roles_are_sane(spec: KindSpec) -> None:
    assert spec.limit > 0 and spec.qos in (0, 1, 2)
    assert spec.publishers, "every kind has a publisher"
    assert spec.description and "|" not in spec.description
    if spec.direction is Direction.DOWN:
        assert Role.DEVICE not in spec.publishers, "a device never sends downlink kinds"
    binary = spec.model in (EscalationHeader, ModelChunkHeader)
    assert (spec.encoding is Encoding.FRAME) == binary


def test_only_state_is_retained_and_commands_never() -> None:
    assert [spec.pattern for spec in SPECS if spec.retain] == ["state"]
    assert not spec_of(Kind.CMD, NAME).retain


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_decode_refuses_one_byte_over_the_rows_limit(spec: KindSpec) -> None:
    topic = _topic(spec)
    with pytest.raises(ContractError, match=f"exceeds the {spec.limit}-byte limit"):
        decode(topic, b" " * (spec.limit + 1))
    with pytest.raises(ContractError) as at_limit:  # refused for its content, not its size
        decode(topic, b" " * spec.limit)
    assert "exceeds" not in str(at_limit.value)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_every_row_has_a_fuzz_sample_that_decodes_to_its_model(spec: KindSpec) -> None:
    samples = [s for s in SAMPLES if spec_for(s.topic) is spec]
    assert samples, f"tests/fuzz/strategies.py has no sample of {spec.pattern}"
    decoded = decode(samples[0].topic, samples[0].payload())
    assert type(decoded.message) is spec.model
    if spec.encoding is Encoding.JSON:
        assert decode(samples[0].topic, encode(decoded.message)).message == decoded.message
    else:
        assert decoded.body


def test_every_queued_kind_has_its_class_in_the_outboxes_that_carry_it() -> None:
    for spec in SPECS:
        if spec.outbox is None:
            with pytest.raises(ContractError, match="never queued"):
                _ = spec.queue_class
            continue
        if Role.DEVICE in spec.publishers:
            assert spec.outbox in DEFAULT_CLASSES, spec.pattern  # the agent's outbox
        outboxes = UPLINK_CLASSES if spec.direction is Direction.UP else DOWNLINK_CLASSES
        assert spec.outbox in outboxes, spec.pattern  # the gateway's
    assert set(DEFAULT_CLASSES) | set(UPLINK_CLASSES) | set(DOWNLINK_CLASSES) == set(OutboxClass)


def test_the_cloud_stores_what_devices_and_gateways_send_up_but_no_commands() -> None:
    stored = {spec.pattern for spec in SPECS if spec.stored}
    assert stored == {
        "state",
        "result",
        "results",
        "escalation",
        "telemetry",
        "rollup",
        "model/ack",
    }
    assert all(spec.direction is Direction.UP for spec in SPECS if spec.stored)


def test_an_audit_sample_is_queued_under_the_lowest_class_of_every_outbox() -> None:
    escalation = spec_of(Kind.ESCALATION)
    header, _ = make_escalation()
    assert queue_class_of(escalation, header) is OutboxClass.ESCALATION
    audit = header.model_copy(update={"audit": True})
    assert queue_class_of(escalation, audit) is OutboxClass.AUDIT
    for classes in (DEFAULT_CLASSES, UPLINK_CLASSES):
        lowest = classes[OutboxClass.AUDIT].priority
        assert all(p.priority < lowest for k, p in classes.items() if k != OutboxClass.AUDIT)
