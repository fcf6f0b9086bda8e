"""Hypothesis strategies for hostile payloads: one valid sample per topic kind, then mutations.

A mutation starts from a payload the contract accepts and breaks it the way a buggy or hostile
sender would: random bytes, a prefix cut anywhere, one JSON field replaced by a value of the wrong
type (or a non-finite number, a NUL, a lone surrogate, a huge integer), a field removed or an
unknown one added, padding past the kind's size limit, nesting thousands of levels deep. The
fuzz tests assert that every decoder turns all of them into a :class:`ContractError` naming the
problem, and that what it does accept can be sent on and stored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from edgecascade.gateway.aggregate import summarise
from edgecascade.shared.codec import encode, limit_for
from edgecascade.shared.contract import spec_for
from edgecascade.shared.framecodec import MAGIC
from edgecascade.shared.ids import new_message_id
from edgecascade.shared.manifest import build_manifest
from edgecascade.shared.messages import (
    AckMessage,
    CommandMessage,
    DeadLetterMessage,
    ReplyMessage,
    VerdictMessage,
)
from edgecascade.shared.model_messages import (
    ModelAckMessage,
    ModelChunkHeader,
    ModelChunkRequestMessage,
    ModelOfferMessage,
)
from edgecascade.shared.topics import Kind, ModelSub, Topic
from tests.utils.factories import (
    MODEL,
    make_batch,
    make_escalation,
    make_result,
    make_state,
    make_telemetry,
    predictions,
)

SITE, DEVICE = "site1", "cam1"
# Examples per property multiply by this: EC_FUZZ_SCALE=10 for a longer hunt than CI's.
SCALE = max(1, int(os.environ.get("EC_FUZZ_SCALE", "1")))
SHA = "cd" * 32


@dataclass(frozen=True)
class Sample:
    """A valid payload of one topic: the JSON document (or frame header) and the body bytes."""

    topic: Topic
    document: dict[str, Any]
    body: bytes | None = None  # frame-codec kinds (escalation, model chunk) only

    def payload(self, document: dict[str, Any] | None = None) -> bytes:
        """The wire bytes of ``document`` (default: the valid one), framed if the kind is."""
        text = json.dumps(self.document if document is None else document).encode()
        if self.body is None:
            return text
        return MAGIC + len(text).to_bytes(4, "big") + text + self.body


def _json(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(encode(message))
    return out


def samples() -> list[Sample]:
    """One valid payload of every topic kind (and every model sub-topic)."""
    result = make_result(SITE, DEVICE)
    header, jpeg = make_escalation(SITE, DEVICE)
    manifest = build_manifest(b"\x01" * 100, name="fashion", version="1.0", labels=["a", "b"])
    telemetry = make_telemetry(latency_ms={"invoke": {"p50": 1, "p95": 2, "p99": 3}})
    verdict = VerdictMessage(
        escalation_id=new_message_id(),
        result_id=result.msg_id,
        model=MODEL,
        top=predictions(),
        agrees=True,
    )
    correlation = new_message_id()
    t = Topic
    return [
        Sample(t(SITE, DEVICE, Kind.STATE), _json(make_state())),
        Sample(t(SITE, DEVICE, Kind.RESULT), _json(result)),
        Sample(t(SITE, "gw", Kind.RESULT_BATCH), _json(make_batch(SITE, [(DEVICE, result)]))),
        Sample(t(SITE, DEVICE, Kind.ESCALATION), _json(header), jpeg),
        Sample(t(SITE, DEVICE, Kind.TELEMETRY), _json(telemetry)),
        Sample(t(SITE, DEVICE, Kind.TELEMETRY_ROLLUP), _json(summarise([telemetry], 0, 1))),
        Sample(t(SITE, DEVICE, Kind.VERDICT), _json(verdict)),
        Sample(
            t(SITE, DEVICE, Kind.CMD, "resync"),
            _json(CommandMessage(correlation=correlation, args={"full": True})),
        ),
        Sample(
            t(SITE, DEVICE, Kind.REPLY, "resync"),
            _json(ReplyMessage(correlation=correlation, status="ok", data={"n": [1, 2]})),
        ),
        Sample(
            t(SITE, DEVICE, Kind.ACK),
            _json(AckMessage(msg_ids=[correlation, new_message_id()])),
        ),
        Sample(
            t(SITE, "gw", Kind.DEAD_LETTER),
            _json(DeadLetterMessage(topic="x", reason="y", payload_size=3, payload_head="00")),
        ),
        Sample(
            t(SITE, DEVICE, Kind.MODEL, ModelSub.OFFER),
            _json(ModelOfferMessage(rollout_id="r1", manifest=manifest)),
        ),
        Sample(
            t(SITE, DEVICE, Kind.MODEL, ModelSub.REQUEST),
            _json(ModelChunkRequestMessage(sha256=SHA, indexes=[0, 1])),
        ),
        Sample(
            t(SITE, DEVICE, Kind.MODEL, ModelSub.ACK),
            _json(ModelAckMessage(rollout_id="r1", version="1.0", sha256=SHA, status="applied")),
        ),
        Sample(
            t(SITE, DEVICE, Kind.MODEL, ModelSub.CHUNK),
            _json(ModelChunkHeader(sha256=SHA, index=0, total=1)),
            b"\x00" * 100,
        ),
    ]


SAMPLES = samples()
# The samples the cloud stores: the contract's rows marked stored.
CLOUD_STORED = [s for s in SAMPLES if spec_for(s.topic).stored]

# Strings a hostile sender puts where text is expected: control characters, NUL, lone
# surrogates (valid in JSON escapes, not encodable as UTF-8), topic wildcards, very long text.
hostile_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from("\x00\x01\x7f/+#$\ud800\udfff\u202e\ufeff"), max_size=8),
    st.sampled_from(["", ".", "..", "../../etc/passwd", "a/b", "+", "#", "x" * 70_000]),
)
hostile_number = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, -0.0, 2**63, -(2**63)]),
)
hostile_scalar = st.one_of(st.none(), st.booleans(), hostile_number, hostile_text)
hostile_value = st.recursive(
    hostile_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(hostile_text, inner, max_size=4)
    ),
    max_leaves=8,
)

Path = tuple[str | int, ...]


def paths(node: Any, prefix: Path = ()) -> list[Path]:
    """Every place in a JSON document: object members and list items, nested."""
    out: list[Path] = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += paths(value, (*prefix, index))
    return out


def _at(document: Any, path: Path) -> Any:
    for step in path:
        document = document[step]
    return document


def _edit(document: Any, path: Path, change: Callable[[Any, str | int], None]) -> Any:
    copy = json.loads(json.dumps(document))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    change(parent, path[-1])
    return copy


@st.composite
def mutated_document(draw: st.DrawFn, sample: Sample) -> dict[str, Any]:
    """The sample's document with one place replaced, removed, or an unknown member added."""
    path = draw(st.sampled_from(paths(sample.document)))
    action = draw(st.sampled_from(["replace", "remove", "add", "same type", "same type"]))
    old = _at(sample.document, path)
    value: Any
    if action == "same type" and isinstance(old, str):
        value = draw(hostile_text)  # the right type, a hostile value: NUL, wildcards, huge
    elif action == "same type" and isinstance(old, int | float) and not isinstance(old, bool):
        value = draw(hostile_number)
    else:
        value = draw(hostile_value)

    def change(parent: Any, key: str | int) -> None:
        if action in ("replace", "same type"):
            parent[key] = value
        elif action == "remove":
            del parent[key]
        elif isinstance(parent, dict):
            parent[f"{key}_extra"] = value
        else:
            parent.append(value)

    out: dict[str, Any] = _edit(sample.document, path, change)
    return out


def _json_bytes(document: Any) -> bytes:
    """JSON as a hostile sender writes it: NaN and Infinity literals, lone surrogate escapes."""
    return json.dumps(document, allow_nan=True).encode()


@st.composite
def hostile_payload(draw: st.DrawFn, sample: Sample) -> bytes:
    """Bytes sent on ``sample.topic`` that break its contract in one of many ways (or do not:
    a mutation can happen to produce a valid message, which the tests allow)."""
    valid = sample.payload()
    kind = draw(
        st.sampled_from(["random", "truncated", "mutated", "oversized", "deep", "not utf-8"])
    )
    if kind == "random":
        return draw(st.binary(max_size=2048))
    if kind == "truncated":
        return valid[: draw(st.integers(0, max(0, len(valid) - 1)))]
    if kind == "oversized":
        return valid + b" " * (limit_for(sample.topic) + 1 - len(valid))
    if kind == "deep":
        depth = draw(st.integers(100, 20_000))
        document = {**sample.document, "extra": "DEEP"}
        text = _json_bytes(document).replace(b'"DEEP"', b"[" * depth + b"]" * depth)
        return _framed(sample, text)
    if kind == "not utf-8":
        document = {**sample.document}
        return _framed(sample, _json_bytes(document).replace(b"{", b"{\xff\xfe", 1))
    return _framed(sample, _json_bytes(draw(mutated_document(sample))))


def _framed(sample: Sample, text: bytes) -> bytes:
    if sample.body is None:
        return text
    return MAGIC + len(text).to_bytes(4, "big") + text + sample.body


def sample_of(kind: Kind, sub: str | None = None) -> Sample:
    return next(s for s in SAMPLES if s.topic.kind is kind and s.topic.sub == sub)
