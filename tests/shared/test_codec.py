from __future__ import annotations

import json
import time

import pytest

from edgecascade.shared.codec import decode, encode, limit_for
from edgecascade.shared.errors import ContractError, FrameCodecError
from edgecascade.shared.framecodec import decode_frame, encode_frame
from edgecascade.shared.ids import message_id_time, new_message_id
from edgecascade.shared.messages import EscalationHeader, ResultMessage, StateMessage
from edgecascade.shared.topics import Kind, Topic
from tests.utils.factories import make_batch, make_escalation, make_result

RESULT_TOPIC = Topic("site1", "cam1", Kind.RESULT)
ESC_TOPIC = Topic("site1", "cam1", Kind.ESCALATION)


def test_message_ids_are_unique_and_time_ordered() -> None:
    ids = [new_message_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    before = time.time()
    assert before - 0.001 <= message_id_time(new_message_id()) <= time.time() + 0.001


def test_result_round_trip() -> None:
    result = make_result()
    decoded = decode(RESULT_TOPIC, encode(result))
    assert decoded.message == result
    assert decoded.body == b""


def test_escalation_round_trip_keeps_jpeg_bytes_exactly() -> None:
    header, jpeg = make_escalation()
    payload = encode(header, jpeg)
    decoded = decode(ESC_TOPIC, payload)
    assert decoded.message == header
    assert decoded.body == jpeg
    # The frame codec costs a small fixed header, not base64's third.
    assert len(payload) - len(jpeg) < 1024


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "invalid ResultMessage"),
        (b"{not json", "invalid ResultMessage"),
        (b"[]", "invalid ResultMessage"),
        (json.dumps({"schema_version": 2}).encode(), "schema_version"),
        (b"\xff\xfe\x00garbage", "invalid ResultMessage"),
    ],
)
def test_malformed_results_are_refused_with_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(ContractError, match=reason):
        decode(RESULT_TOPIC, payload)


def test_unknown_fields_are_refused() -> None:
    raw = json.loads(encode(make_result()))
    raw["surprise"] = 1
    with pytest.raises(ContractError, match="surprise"):
        decode(RESULT_TOPIC, json.dumps(raw).encode())


def test_oversized_payload_is_refused_before_parsing() -> None:
    with pytest.raises(ContractError, match="exceeds"):
        decode(RESULT_TOPIC, b" " * (limit_for(RESULT_TOPIC) + 1))
    with pytest.raises(ContractError, match="exceeds"):
        decode(ESC_TOPIC, b"x" * (limit_for(ESC_TOPIC) + 1))


def test_escalation_with_wrong_image_bytes_is_refused() -> None:
    header, _ = make_escalation()
    with pytest.raises(FrameCodecError, match="not image/jpeg"):
        decode(ESC_TOPIC, encode(header, b"GIF89a not a jpeg"))


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda p: p[:3], "shorter than"),
        (lambda p: b"XXXX" + p[4:], "expected"),
        (lambda p: p[:4] + (2**31).to_bytes(4, "big") + p[8:], "exceeds"),
        (lambda p: p[:20], "truncated"),
        (lambda p: p[:8] + b"{" * int.from_bytes(p[4:8], "big") + b"\xff\xd8\xff", "invalid Escal"),
    ],
)
def test_broken_frames_are_refused(mutate: object, reason: str) -> None:
    header, jpeg = make_escalation()
    payload = encode_frame(header, jpeg)
    assert callable(mutate)
    with pytest.raises(FrameCodecError, match=reason):
        decode_frame(mutate(payload), EscalationHeader)


def test_state_message_defaults() -> None:
    state = StateMessage(status="online", session=1)
    assert state.schema_version == 1
    assert decode(Topic("s", "d", Kind.STATE), encode(state)).message == state


def test_result_rejects_out_of_range_scores() -> None:
    raw = json.loads(encode(make_result()))
    raw["top"][0]["score"] = 1.5
    with pytest.raises(ContractError, match=r"top\.0\.score"):
        decode(RESULT_TOPIC, json.dumps(raw).encode())
    assert isinstance(make_result(), ResultMessage)


def test_a_compressed_result_batch_decodes_like_the_plain_one() -> None:
    from edgecascade.shared.codec import batch_json, compress_batch

    batch = make_batch("s1", [("cam1", make_result("s1", "cam1")) for _ in range(20)])
    plain = encode(batch)
    packed = compress_batch(plain)
    wire = Topic("s1", "gateway", Kind.RESULT_BATCH)
    assert len(packed) < len(plain) / 3
    assert decode(wire, packed).message == decode(wire, plain).message == batch
    assert batch_json(packed) == batch_json(plain) == plain


def test_broken_or_oversized_compressed_batches_are_refused() -> None:
    import zlib

    from edgecascade.shared.codec import compress_batch

    wire = Topic("s1", "gateway", Kind.RESULT_BATCH)
    packed = compress_batch(encode(make_batch("s1", [("cam1", make_result("s1", "cam1"))])))
    with pytest.raises(ContractError, match="truncated"):
        decode(wire, packed[: len(packed) // 2])
    with pytest.raises(ContractError, match="does not inflate"):
        decode(wire, b"\x78" + b"\x00" * 20)
    bomb = zlib.compress(b" " * (limit_for(wire) + 10))  # a few KiB that inflate past 16 MiB
    with pytest.raises(ContractError, match="inflates beyond the 16777216-byte limit"):
        decode(wire, bomb)
    # Other kinds are never inflated: a zlib stream is simply not a valid result.
    with pytest.raises(ContractError, match="invalid ResultMessage"):
        decode(Topic("s1", "cam1", Kind.RESULT), zlib.compress(encode(make_result())))
