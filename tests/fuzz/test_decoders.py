"""Property-based fuzzing of every decoder of the shared contract.

Each test feeds a decoder payloads that are malformed, truncated, oversized, wrong-typed, too deep
or not UTF-8 (``tests/fuzz/strategies.py``) and asserts the one outcome the components rely on:
a :class:`ContractError` whose message names the problem, or a valid message that survives being
sent on (encoded and decoded again, as the gateway and the cloud do). Any other exception type
would escape a subscriber's ``except ContractError`` and kill its network thread.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edgecascade.gateway.aggregate import summarise
from edgecascade.shared.chunks import Download
from edgecascade.shared.codec import decode, decode_results, encode
from edgecascade.shared.errors import ContractError, FrameCodecError
from edgecascade.shared.framecodec import (
    JPEG_MAGIC,
    MAGIC,
    PNG_MAGIC,
    check_image,
    decode_frame,
    encode_frame,
    image_size,
)
from edgecascade.shared.manifest import (
    ManifestError,
    build_manifest,
    sign_manifest,
    verify_manifest,
)
from edgecascade.shared.messages import EscalationHeader, Message, ResultBatchMessage, ResultMessage
from edgecascade.shared.model_messages import ModelChunkHeader, ModelManifest
from edgecascade.shared.topics import Kind, Topic, topic, topic_filter, validate_id
from tests.fuzz.strategies import (
    SAMPLES,
    SCALE,
    SHA,
    Sample,
    hostile_payload,
    hostile_text,
    hostile_value,
    mutated_document,
)
from tests.utils.factories import make_telemetry

FUZZ = settings(
    max_examples=150 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
IDS = [f"{s.topic.kind.value}{'/' + s.topic.sub if s.topic.sub else ''}" for s in SAMPLES]


def _floats(node: object) -> list[float]:
    if isinstance(node, float):
        return [node]
    if isinstance(node, dict):
        return [f for value in node.values() for f in _floats(value)]
    if isinstance(node, list | tuple):
        return [f for value in node for f in _floats(value)]
    return []


def _texts(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [t for key, value in node.items() for t in (str(key), *_texts(value))]
    if isinstance(node, list | tuple):
        return [t for value in node for t in _texts(value)]
    return []


def assert_sendable(message: Message, body: bytes, sample: Sample) -> None:
    """An accepted message is one the next hop accepts too, and one a database can store."""
    document = message.model_dump(mode="python")
    assert all(math.isfinite(f) for f in _floats(document)), document
    for text in _texts(document):
        assert "\x00" not in text, text
        text.encode("utf-8")  # a lone surrogate raises here: PostgreSQL and SQLite refuse it
    again = decode(sample.topic, encode(message, body if sample.body is not None else None))
    assert again.message == message


def check(sample: Sample, payload: bytes) -> None:
    try:
        decoded = decode(sample.topic, payload)
    except ContractError as exc:
        assert str(exc), "a contract error must say what is wrong"
        return
    assert_sendable(decoded.message, decoded.body, sample)


@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
def test_the_valid_sample_decodes(sample: Sample) -> None:
    decoded = decode(sample.topic, sample.payload())
    assert_sendable(decoded.message, decoded.body, sample)


@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
def test_hostile_payloads_give_a_contract_error_or_a_sendable_message(sample: Sample) -> None:
    @FUZZ
    @given(payload=hostile_payload(sample))
    def fuzz(payload: bytes) -> None:
        check(sample, payload)

    fuzz()


@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
def test_wrong_typed_fields_are_refused_and_named(sample: Sample) -> None:
    """A document whose field has a wrong type: the error names the field's path."""

    @FUZZ
    @given(document=mutated_document(sample))
    def fuzz(document: dict[str, object]) -> None:
        payload = sample.payload(document)
        try:
            decoded = decode(sample.topic, payload)
        except ContractError as exc:
            assert str(exc)
            return
        assert_sendable(decoded.message, decoded.body, sample)

    fuzz()


RESULT_SAMPLES = [s for s in SAMPLES if s.topic.kind in (Kind.RESULT, Kind.RESULT_BATCH)]


def check_twins_agree(sample: Sample, payload: bytes) -> None:
    """The cloud's dict decoder (:func:`decode_results`) and the models' decoder accept and
    refuse the same payloads, with the same error, and agree on what they accept."""
    try:
        message = decode(sample.topic, payload).message
    except ContractError as exc:
        with pytest.raises(ContractError) as twin:
            decode_results(sample.topic, payload)
        assert str(twin.value) == str(exc)
        return
    results = decode_results(sample.topic, payload)
    if isinstance(message, ResultBatchMessage):
        expected = [(entry.device, entry.result) for entry in message.results]
    else:
        assert isinstance(message, ResultMessage)
        expected = [(sample.topic.device, message)]
    assert [device for device, _ in results] == [device for device, _ in expected]
    for (_, result), (_, model) in zip(results, expected, strict=True):
        # msg_id and ts may be fresh on each side (a factory default): take the model's. Any
        # value the twin lost or changed would come back as a default, unequal to the model's.
        again = {**result, "msg_id": model.msg_id, "ts": model.ts}
        assert ResultMessage.model_validate(again) == model


@pytest.mark.parametrize("sample", RESULT_SAMPLES, ids=lambda s: s.topic.kind.value)
def test_the_dict_decoder_and_the_models_agree_on_hostile_payloads(sample: Sample) -> None:
    @FUZZ
    @given(payload=st.one_of(hostile_payload(sample), mutated_document(sample).map(sample.payload)))
    def fuzz(payload: bytes) -> None:
        check_twins_agree(sample, payload)

    check_twins_agree(sample, sample.payload())
    fuzz()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("captured_at", float("inf")),
        ("captured_at", float("nan")),
        ("ts", float("inf")),
        ("frame_id", "frame\x00one"),
        ("ground_truth", "cat\x00"),
    ],
)
def test_non_finite_numbers_and_nul_are_refused_by_name(field: str, value: object) -> None:
    """The values the fuzzer found that the contract let through and PostgreSQL then refused
    (with a whole gateway batch lost in the cloud): refused at the first hop, by name."""
    sample = next(s for s in SAMPLES if s.topic.kind is Kind.RESULT)
    payload = json.dumps({**sample.document, field: value}).encode()
    with pytest.raises(ContractError, match=field):
        decode(sample.topic, payload)


@FUZZ
@given(data=st.binary(max_size=512))
@example(data=b"")
@example(data=MAGIC)
@example(data=MAGIC + b"\xff\xff\xff\xff{}")
@example(data=MAGIC + b"\x00\x00\x00\x02{}")
@example(data=MAGIC + b"\x00\x00\x00\x04\xff\xfe\xfd\xfc")
def test_the_frame_codec_refuses_any_bytes_with_a_frame_error(data: bytes) -> None:
    for header_type in (EscalationHeader, ModelChunkHeader):
        with pytest.raises(FrameCodecError):
            decode_frame(data, header_type)


@FUZZ
@given(body=st.binary(max_size=4096), cut=st.integers(min_value=0))
def test_frames_round_trip_and_any_cut_is_refused(body: bytes, cut: int) -> None:
    header = ModelChunkHeader(sha256=SHA, index=0, total=1)
    frame = encode_frame(header, body)
    assert decode_frame(frame, ModelChunkHeader) == (header, body)
    prefix = frame[: cut % (len(frame) - len(body))]  # cut inside the prefix or the header
    with pytest.raises(FrameCodecError):
        decode_frame(prefix, ModelChunkHeader)


@FUZZ
@given(body=st.binary(max_size=64), content_type=st.sampled_from(["image/jpeg", "image/png"]))
def test_an_escalation_body_must_be_the_image_its_header_names(
    body: bytes, content_type: str
) -> None:
    magic = JPEG_MAGIC if content_type == "image/jpeg" else PNG_MAGIC
    if body.startswith(magic):
        check_image(body, content_type)
    else:
        with pytest.raises(FrameCodecError, match=content_type):
            check_image(body, content_type)


@FUZZ
@given(text=st.one_of(st.text(max_size=200), st.lists(hostile_text, max_size=8).map("/".join)))
def test_any_topic_string_parses_to_itself_or_is_refused(text: str) -> None:
    try:
        parsed = Topic.parse(text)
    except ContractError as exc:
        assert str(exc)
        return
    assert str(parsed) == text


@FUZZ
@given(value=hostile_text)
@example(value="cam/1")
@example(value="+")
@example(value="#")
@example(value="cam\x00")
@example(value="x" * 65)
@example(value="..")
def test_ids_cannot_inject_topic_levels_or_wildcards(value: str) -> None:
    """An id with ``/``, ``+``, ``#``, NUL or more than 64 characters never reaches a topic."""
    unsafe = not value or len(value) > 64 or value in (".", "..")
    unsafe |= any(not (c.isascii() and (c.isalnum() or c in "._-")) for c in value)
    if not unsafe:
        assert validate_id(value, "device id") == value
        assert topic("site1", value, Kind.RESULT).split("/")[3] == value
        return
    for build in (
        lambda: validate_id(value, "device id"),
        lambda: topic("site1", value, Kind.RESULT),
        lambda: topic(value, "cam1", Kind.RESULT),
        lambda: topic("site1", "cam1", Kind.CMD, value),
        lambda: topic_filter(Kind.RESULT, site=value),
        lambda: Topic("site1", "cam1", Kind.RESULT, prefix=value),
    ):
        with pytest.raises(ContractError, match="invalid"):
            build()


def _manifest() -> tuple[ModelManifest, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    manifest = build_manifest(b"\x01" * 1000, name="fashion", version="1.0", labels=["a", "b"])
    return sign_manifest(manifest, key), key


@FUZZ
@given(
    field=st.sampled_from(["version", "sha256", "labels", "temperature", "signature"]),
    value=hostile_value,
)
def test_a_tampered_manifest_fails_verification_with_a_manifest_error(
    field: str, value: object
) -> None:
    signed, key = _manifest()
    try:
        tampered = ModelManifest.model_validate({**signed.model_dump(mode="json"), field: value})
    except ValueError:
        return  # not even a manifest: the offer is refused by the decoder
    if tampered == signed:
        return
    with pytest.raises(ManifestError, match=r"signature|not signed"):
        verify_manifest(tampered, key.public_key())


def test_a_manifest_signed_by_another_key_is_refused() -> None:
    signed, _ = _manifest()
    with pytest.raises(ManifestError, match="bad signature"):
        verify_manifest(signed, Ed25519PrivateKey.generate().public_key())


@settings(max_examples=100 * SCALE, deadline=None, suppress_health_check=list(HealthCheck))
@given(index=st.integers(0, 2**40), total=st.integers(1, 2**40), body=st.binary(max_size=300))
def test_a_hostile_chunk_never_writes_outside_the_download(
    tmp_path: Path, index: int, total: int, body: bytes
) -> None:
    """Chunk headers with any index and total, bodies of any length: the staging file keeps its
    size and only a chunk that fits its slot exactly is stored."""
    manifest = build_manifest(b"\x02" * 1000, name="m", version="1", labels=["a"], chunk_size=256)
    download = Download(tmp_path / "staging", manifest)
    stored = download.store(
        ModelChunkHeader(sha256=manifest.sha256, index=index, total=total), body
    )
    expected = min(256, 1000 - index * 256) if index < 4 else -1
    assert stored == (total == 4 and index < 4 and len(body) == expected)
    assert download.part.stat().st_size == 1000


@FUZZ
@given(tail=st.binary(max_size=300), content_type=st.sampled_from(["image/jpeg", "image/png"]))
def test_reading_an_image_size_from_any_bytes_gives_a_size_or_a_frame_error(
    tail: bytes, content_type: str
) -> None:
    magic = JPEG_MAGIC if content_type == "image/jpeg" else PNG_MAGIC
    try:
        width, height = image_size(magic + tail, content_type)
    except FrameCodecError as exc:
        assert str(exc)
        return
    assert width >= 0 and height >= 0


def test_a_decompression_bomb_is_refused_before_anything_decodes_it() -> None:
    """A blank 16384 x 16384 PNG is 260 KB on the wire and 268 MB (805 MB in colour) decoded:
    a compromised device could make every worker allocate that per escalation."""
    ok, png = cv2.imencode(".png", np.zeros((16384, 16384), np.uint8))
    assert ok and len(png) < 1024 * 1024
    sample = next(s for s in SAMPLES if s.topic.kind is Kind.ESCALATION)
    header = {**sample.document, "content_type": "image/png"}
    lying = Sample(sample.topic, header, png.tobytes())  # the header says 64x48
    with pytest.raises(FrameCodecError, match="16384x16384, its header says 64x48"):
        decode(sample.topic, lying.payload())
    honest = Sample(sample.topic, {**header, "width": 16384, "height": 16384}, png.tobytes())
    with pytest.raises(ContractError, match="more than 33554432 pixels"):
        decode(sample.topic, honest.payload())
    ok, fine = cv2.imencode(".png", np.zeros((48, 64), np.uint8))
    assert decode(sample.topic, Sample(sample.topic, header, fine.tobytes()).payload()).body


@FUZZ
@given(values=st.lists(st.floats(min_value=0, max_value=1.7e308), min_size=1, max_size=5))
def test_a_telemetry_rollup_of_any_finite_samples_is_a_valid_message(values: list[float]) -> None:
    """The gateway sums samples up; a plain sum of two near the float maximum is infinite, which
    the contract refuses: the rollup (and the gateway's loop) would fail on a device's numbers."""
    samples = [make_telemetry(cpu_percent=v, memory_rss_mb=v) for v in values]
    rollup = summarise(samples, 0.0, 1.0)
    stats = rollup.fields["cpu_percent"]
    assert math.isfinite(stats.mean) and stats.mean >= 0
    assert stats.mean <= max(values) or math.isclose(stats.mean, max(values), rel_tol=1e-9)
    topic_ = Topic("site1", "cam1", Kind.TELEMETRY_ROLLUP)
    assert decode(topic_, encode(rollup)).message == rollup
