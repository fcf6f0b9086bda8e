"""Write TFLite Model Metadata into a copy of a real model, as published models carry it.

The metadata flatbuffer is built with ``flatbuffers.Builder`` by the field slots of
``metadata_schema.fbs`` (ModelMetadata -> SubGraphMetadata -> TensorMetadata, an input with
ImageProperties and NormalizationOptions, an output with a TENSOR_AXIS_LABELS file); the model is
rewritten with LiteRT's own ``flatbuffer_utils``, and the label file is appended as a zip archive.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence

import flatbuffers
import numpy as np

COLOR_SPACE = {"rgb": 1, "gray": 2}


def _vector(builder: flatbuffers.Builder, offsets: Sequence[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return int(builder.EndVector())


def _table(builder: flatbuffers.Builder, fields: int, slots: dict[int, tuple[str, int]]) -> int:
    """A table; ``slots`` maps slot -> ("offset" | "ubyte", value)."""
    builder.StartObject(fields)
    for slot, (kind, value) in sorted(slots.items(), reverse=True):
        if kind == "offset":
            builder.PrependUOffsetTRelativeSlot(slot, value, 0)
        else:
            builder.PrependUint8Slot(slot, value, 0)
    return int(builder.EndObject())


def metadata_flatbuffer(
    *,
    name: str,
    label_file: str | None,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    color: str | None,
) -> bytes:
    """A ``ModelMetadata`` flatbuffer (identifier ``M001``) for one input and one output."""
    b = flatbuffers.Builder(1024)
    output: dict[int, tuple[str, int]] = {}
    if label_file is not None:
        file = _table(b, 5, {0: ("offset", b.CreateString(label_file)), 2: ("ubyte", 2)})
        output[6] = ("offset", _vector(b, [file]))
    output_tensor = _table(b, 7, output)
    inputs: dict[int, tuple[str, int]] = {}
    if mean is not None and std is not None:
        mean_vector = b.CreateNumpyVector(np.asarray(mean, np.float32))
        std_vector = b.CreateNumpyVector(np.asarray(std, np.float32))
        options = _table(b, 2, {0: ("offset", mean_vector), 1: ("offset", std_vector)})
        unit = _table(b, 2, {0: ("ubyte", 1), 1: ("offset", options)})
        inputs[4] = ("offset", _vector(b, [unit]))
    if color is not None:
        image = _table(b, 2, {0: ("ubyte", COLOR_SPACE[color])})
        inputs[3] = ("offset", _table(b, 3, {0: ("ubyte", 2), 1: ("offset", image)}))
    input_tensor = _table(b, 7, inputs)
    subgraph = _table(
        b,
        10,
        {2: ("offset", _vector(b, [input_tensor])), 3: ("offset", _vector(b, [output_tensor]))},
    )
    root = _table(
        b, 8, {0: ("offset", b.CreateString(name)), 3: ("offset", _vector(b, [subgraph]))}
    )
    b.Finish(root, file_identifier=b"M001")
    return bytes(b.Output())


def with_metadata(
    model: bytes,
    metadata: bytes,
    files: dict[str, str] | None = None,
) -> bytes:
    """``model`` with a ``TFLITE_METADATA`` entry holding ``metadata`` and ``files`` (name ->
    text) appended as the associated-files zip archive."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    tree = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata, np.uint8)
    tree.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = "TFLITE_METADATA"
    entry.buffer = len(tree.buffers) - 1
    tree.metadata = [*(tree.metadata or []), entry]
    out = bytes(flatbuffer_utils.convert_object_to_bytearray(tree))
    if files:
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as z:
            for name, text in files.items():
                z.writestr(name, text)
        out += archive.getvalue()
    return out
