"""Encode and decode payloads by message kind, with size limits.

The one place a subscriber turns bytes into a message: every component calls :func:`decode`, which
applies the topic's row of :data:`shared.contract.KINDS` (its model or frame-codec header, its
size limit) and raises :class:`ContractError` with the reason, so a malformed or oversized payload
is counted and dead-lettered rather than crashing anything. The cloud's ingest
decodes results with :func:`decode_results` instead: the same rules, validated into the plain
dicts of :mod:`shared.dicts` rather than into models.

Result batches may travel zlib-compressed (:func:`compress_batch`, the gateway's
``batch.compress``): a JSON payload starts with ``{``, a zlib stream with ``0x78``, so
:func:`decode` tells them apart by the first byte and inflates at most the kind's size limit.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from edgecascade.shared import dicts
from edgecascade.shared.contract import Encoding, KindSpec, spec_for, spec_of
from edgecascade.shared.errors import ContractError, FrameCodecError
from edgecascade.shared.framecodec import check_image, decode_frame, encode_frame, image_size
from edgecascade.shared.ids import new_message_id
from edgecascade.shared.messages import EscalationHeader, Message, ResultBatchMessage, ResultMessage
from edgecascade.shared.topics import Kind, Topic


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded payload: the message (or header) and, for binary kinds, the body bytes."""

    message: Message
    body: bytes = b""


def limit_for(topic: Topic) -> int:
    """The largest payload accepted on ``topic`` (its row of :data:`shared.contract.KINDS`)."""
    return spec_for(topic).limit


ZLIB_LEAD = 0x78  # first byte of a zlib stream (deflate, 32 KiB window); never starts JSON


def compress_batch(payload: bytes, level: int = 6) -> bytes:
    """A result batch's JSON, zlib-compressed: repeated keys, ids and labels shrink ~6x."""
    return zlib.compress(payload, level)


def batch_json(payload: bytes) -> bytes:
    """A result batch's JSON, whether it travelled compressed or not (size-limited)."""
    limit = spec_of(Kind.RESULT_BATCH).limit
    return _inflate(payload, limit) if payload[:1] == bytes([ZLIB_LEAD]) else payload


def _inflate(payload: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(payload, limit + 1)
    except zlib.error as exc:
        raise ContractError(f"compressed payload does not inflate: {exc}") from exc
    if len(data) > limit or inflater.unconsumed_tail:
        raise ContractError(f"compressed payload inflates beyond the {limit}-byte limit")
    if not inflater.eof:
        raise ContractError("compressed payload is truncated")
    return data


def _within_limit(spec: KindSpec, payload: bytes) -> bytes:
    """``payload`` if it is within the row's limit (a result batch: inflated), or raise."""
    if len(payload) > spec.limit:
        raise ContractError(f"payload of {len(payload)} bytes exceeds the {spec.limit}-byte limit")
    if spec.kind is Kind.RESULT_BATCH and payload[:1] == bytes([ZLIB_LEAD]):
        return _inflate(payload, spec.limit)
    return payload


def _invalid(name: str, exc: ValidationError) -> ContractError:
    """The first validation error as a contract error: the field's path, the rule, the value."""
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "payload"
    got = "" if err["type"] == "json_invalid" else f" (got {_short(err['input'])})"
    return ContractError(f"invalid {name}: {where}: {err['msg']}{got}")


def decode(topic: Topic, payload: bytes) -> Decoded:
    """Validate ``payload`` for ``topic``; raises :class:`ContractError` naming the problem."""
    spec = spec_for(topic)
    payload = _within_limit(spec, payload)
    if spec.encoding is Encoding.FRAME:
        header, body = decode_frame(payload, spec.model)
        if isinstance(header, EscalationHeader):
            _check_frame(header, body)
        return Decoded(header, body)
    try:
        return Decoded(spec.model.model_validate_json(payload))
    except ValidationError as exc:
        raise _invalid(spec.model.__name__, exc) from exc


def _check_frame(header: EscalationHeader, body: bytes) -> None:
    """The image is the type and size its header says."""
    check_image(body, header.content_type)
    size = image_size(body, header.content_type)
    if size != (header.width, header.height):
        raise FrameCodecError(
            f"{header.content_type} frame is {size[0]}x{size[1]}, its header says "
            f"{header.width}x{header.height}"
        )


def decode_results(topic: Topic, payload: bytes) -> list[tuple[str, dicts.ResultMessage]]:
    """The results of a ``result`` or ``result_batch`` payload, each with its device, as dicts.

    The rules of :func:`decode` (the same limits, constraints and errors), validated into the
    TypedDicts of :mod:`shared.dicts` rather than into models: the cloud's ingest path. The
    defaults the models would fill in from a factory, ``msg_id`` and ``ts``, are filled in here.
    """
    payload = _within_limit(spec_for(topic), payload)
    try:
        if topic.kind is Kind.RESULT:
            results = [(topic.device, dicts.RESULT.validate_json(payload))]
        elif topic.kind is Kind.RESULT_BATCH:
            batch = dicts.RESULT_BATCH.validate_json(payload)
            results = [(entry["device"], entry["result"]) for entry in batch["results"]]
        else:
            raise ContractError(f"{topic.kind.value!r} payloads hold no results")
    except ValidationError as exc:
        name = ResultMessage if topic.kind is Kind.RESULT else ResultBatchMessage
        raise _invalid(name.__name__, exc) from exc
    for _device, result in results:
        if "msg_id" not in result:
            result["msg_id"] = new_message_id()
        if "ts" not in result:
            result["ts"] = time.time()
    if not all(_answer_holds(result) for _device, result in results):
        # What the twins cannot say, the models' validators do: they give the error, the same
        # one :func:`decode` gives.
        name = ResultMessage if topic.kind is Kind.RESULT else ResultBatchMessage
        try:
            name.model_validate_json(payload)
        except ValidationError as exc:
            raise _invalid(name.__name__, exc) from exc
    return results


def _answer_holds(result: dicts.ResultMessage) -> bool:
    """What the model's validators check: a classification result has a top-1 and no boxes,
    every box is ordered (``x0 <= x1``, ``y0 <= y1``)."""
    if result.get("task", "classification") == "classification":
        return bool(result["top"]) and not result.get("detections")
    return all(
        found["box"][0] <= found["box"][2] and found["box"][1] <= found["box"][3]
        for found in result.get("detections", [])
    )


def _short(value: object, limit: int = 60) -> str:
    """The offending value for an error message, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def encode(message: BaseModel, body: bytes | None = None) -> bytes:
    """Wire bytes for a message; with ``body`` the message is a frame-codec header."""
    if body is not None:
        return encode_frame(message, body)
    return message.model_dump_json(exclude_defaults=False).encode("utf-8")
