"""The TypedDict twins of the result models (:mod:`shared.dicts`) say what the models say.

The fuzzer (``tests/fuzz/test_decoders.py``) feeds both the same hostile payloads; these tests
pin the schemas and the decoder built on the twins.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from edgecascade.shared import dicts
from edgecascade.shared.codec import compress_batch, decode, decode_results, encode
from edgecascade.shared.errors import ContractError
from edgecascade.shared.messages import ResultBatchMessage, ResultMessage
from edgecascade.shared.topics import Kind, Topic
from tests.utils.factories import make_batch, make_result

RESULT_TOPIC = Topic("site1", "cam1", Kind.RESULT)
BATCH_TOPIC = Topic("site1", "gateway", Kind.RESULT_BATCH)
BOX = {"label": "face", "score": 0.9, "box": [10.0, 20.0, 110.0, 140.0]}


def _rules(schema: Any) -> Any:
    """A JSON schema without what only documents: descriptions, and defaults (a twin marks a
    field with a default ``NotRequired`` and leaves filling it in to the decoder)."""
    if isinstance(schema, dict):
        return {k: _rules(v) for k, v in schema.items() if k not in ("default", "description")}
    if isinstance(schema, list):
        return [_rules(v) for v in schema]
    return schema


@pytest.mark.parametrize(
    ("twin", "model"),
    [(dicts.RESULT, ResultMessage), (dicts.RESULT_BATCH, ResultBatchMessage)],
    ids=["result", "result_batch"],
)
def test_each_twin_has_its_models_schema(twin: Any, model: Any) -> None:
    """Names, types, patterns, bounds, required fields and unknown fields refused: all equal."""
    assert _rules(twin.json_schema()) == _rules(model.model_json_schema())


def test_a_batch_decodes_to_the_same_results_as_the_models() -> None:
    results = [(f"cam{i}", make_result("site1", f"cam{i}")) for i in range(3)]
    payload = encode(make_batch("site1", results))
    for wire in (payload, compress_batch(payload)):
        decoded = decode_results(BATCH_TOPIC, wire)
        assert decoded == [(device, result.model_dump()) for device, result in results]


def test_a_single_result_decodes_with_its_topics_device() -> None:
    result = make_result("site1", "cam1")
    assert decode_results(RESULT_TOPIC, encode(result)) == [("cam1", result.model_dump())]


def test_the_factory_defaults_are_filled_in_as_the_model_would() -> None:
    document = json.loads(encode(make_result()))
    for field in ("msg_id", "ts", "latency_ms", "escalated", "ground_truth", "schema_version"):
        del document[field]
    payload = json.dumps(document).encode()
    before = time.time()
    [(_device, result)] = decode_results(RESULT_TOPIC, payload)
    model = decode(RESULT_TOPIC, payload).message
    assert isinstance(model, ResultMessage)
    assert result["msg_id"] != model.msg_id  # each a fresh UUIDv7, as the model makes one
    assert ResultMessage.model_validate({**result, "msg_id": model.msg_id, "ts": model.ts}) == model
    assert before <= result["ts"] <= time.time()


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d["results"][0]["result"].update(top=[]), "results.0.result"),
        (lambda d: d["results"][1].update(device="cam/1"), "results.1.device"),
        (lambda d: d["results"][0]["result"].update(captured_at=float("nan")), "captured_at"),
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d["results"][0]["result"].update(detections=[BOX]), "results.0.result"),
        (
            lambda d: d["results"][0]["result"].update(
                task="detection", top=[], detections=[{**BOX, "box": [9, 0, 1, 5]}]
            ),
            "is not (x0, y0, x1, y1)",
        ),
    ],
)
def test_a_bad_batch_is_refused_with_the_models_error(mutate: Any, reason: str) -> None:
    batch = make_batch("site1", [("cam1", make_result()), ("cam2", make_result())])
    document = json.loads(encode(batch))
    mutate(document)
    payload = json.dumps(document).encode()
    with pytest.raises(ContractError) as twin:
        decode_results(BATCH_TOPIC, payload)
    with pytest.raises(ContractError) as model:
        decode(BATCH_TOPIC, payload)
    assert reason in str(twin.value)
    assert str(twin.value) == str(model.value)


def test_a_detection_result_decodes_as_the_model_does() -> None:
    result = ResultMessage.model_validate(
        {
            **make_result("site1", "cam1").model_dump(),
            "task": "detection",
            "top": [],
            "detections": [BOX, {**BOX, "zone": "door"}],
            "frame_size": (1280, 720),
        }
    )
    wire = encode(result)
    assert b'"task":"detection"' in wire
    assert decode_results(RESULT_TOPIC, wire) == [("cam1", result.model_dump())]
    classification = encode(make_result("site1", "cam1"))
    assert b"detections" not in classification and b"task" not in classification


def test_other_kinds_hold_no_results() -> None:
    with pytest.raises(ContractError, match="hold no results"):
        decode_results(Topic("site1", "cam1", Kind.TELEMETRY), b"{}")
