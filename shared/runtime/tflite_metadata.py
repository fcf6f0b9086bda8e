"""TFLite Model Metadata: what a published ``.tflite`` says about itself.

A model may carry a ``TFLITE_METADATA`` entry: a flatbuffer of the metadata schema
(``metadata_schema.fbs``, file identifier ``M001``) in one of the model's buffers, with its
associated files (the label file) packed as a zip archive appended to the model. This module
reads the three facts the runtime needs from it: the input's normalisation (mean and std, one
or one per channel), the input's colour space and the output's label file.

Which library reads it, and why:

- The model flatbuffer (its ``metadata`` entries and ``buffers``) is read with the generated
  schema module that LiteRT itself ships, ``ai_edge_litert.schema_py_generated``: already a
  dependency of the runtime, kept in step with the interpreter.
- The metadata flatbuffer is read with the ``flatbuffers`` runtime (Google's, a dependency of
  ai-edge-litert) by the field slots of ``metadata_schema.fbs``. The maintained generated module
  of that schema ships only inside ``mediapipe`` (``mediapipe/tasks/metadata/``), whose wheel
  pulls opencv-contrib-python (a second ``cv2`` beside opencv-python-headless), matplotlib and
  sounddevice: too heavy for a camera install. ``tflite-support``, where the schema was first
  published, has had no release since 2023, ships wheels for CPython <= 3.11 only and pins
  protobuf < 4. The ``tflite`` package parses the model schema only, not the metadata.
  So the few fields below are read through ``flatbuffers.table.Table``, which does the
  format's work (vtables, offsets, vectors); only the slot numbers come from the schema.

Errors are :class:`~edgecascade.shared.errors.ModelError` naming the model and the reason.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

from edgecascade.shared.errors import ModelError

METADATA_NAME = b"TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
# metadata_schema.fbs: table -> field slot (the n-th field of the table, from 0).
MODEL_SUBGRAPHS, MODEL_NAME, MODEL_DESCRIPTION, MODEL_AUTHOR, MODEL_LICENSE = 3, 0, 1, 4, 5
SUBGRAPH_INPUTS, SUBGRAPH_OUTPUTS = 2, 3
TENSOR_CONTENT, TENSOR_PROCESS_UNITS, TENSOR_FILES = 3, 4, 6
CONTENT_PROPERTIES_TYPE, CONTENT_PROPERTIES = 0, 1
IMAGE_COLOR_SPACE = 0
UNIT_OPTIONS_TYPE, UNIT_OPTIONS = 0, 1
NORMALIZATION_MEAN, NORMALIZATION_STD = 0, 1
FILE_NAME, FILE_TYPE, FILE_LOCALE = 0, 2, 3
# union and enum values
IMAGE_PROPERTIES = 2  # ContentProperties.ImageProperties
NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions.NormalizationOptions
TENSOR_AXIS_LABELS = 2  # AssociatedFileType
COLOR_SPACES = {1: "rgb", 2: "gray"}  # ColorSpaceType; 0 is UNKNOWN


@dataclass(frozen=True, slots=True)
class TfliteMetadata:
    """What the model's metadata says; ``None`` or empty where it says nothing."""

    name: str
    description: str
    author: str
    license: str
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    color: str | None  # "rgb" or "gray"
    label_file: str | None
    labels: tuple[str, ...]


class _Table:
    """One flatbuffer table, read by field slot with the ``flatbuffers`` runtime."""

    def __init__(self, buf: bytes, pos: int) -> None:
        from flatbuffers.table import Table

        self._tab = Table(buf, pos)

    def _offset(self, slot: int) -> int:
        return int(self._tab.Offset(4 + 2 * slot))

    def string(self, slot: int) -> str:
        o = self._offset(slot)
        return bytes(self._tab.String(o + self._tab.Pos)).decode("utf-8") if o else ""

    def byte(self, slot: int) -> int:
        """A union type or an enum (all values here are small and positive)."""
        from flatbuffers.number_types import Uint8Flags

        o = self._offset(slot)
        return int(self._tab.Get(Uint8Flags, o + self._tab.Pos)) if o else 0

    def table(self, slot: int) -> _Table | None:
        o = self._offset(slot)
        return _Table(self._tab.Bytes, self._tab.Indirect(o + self._tab.Pos)) if o else None

    def tables(self, slot: int) -> list[_Table]:
        o = self._offset(slot)
        if not o:
            return []
        start = self._tab.Vector(o)
        return [
            _Table(self._tab.Bytes, self._tab.Indirect(start + 4 * i))
            for i in range(self._tab.VectorLen(o))
        ]

    def floats(self, slot: int) -> tuple[float, ...]:
        from flatbuffers.number_types import Float32Flags

        o = self._offset(slot)
        if not o:
            return ()
        start = self._tab.Vector(o)
        return tuple(  # float32 -> the shortest decimal that rounds to it (123.675, not ...03)
            float(f"{self._tab.Get(Float32Flags, start + 4 * i):.7g}")
            for i in range(self._tab.VectorLen(o))
        )


def metadata_buffer(content: bytes, source: str) -> bytes | None:
    """The ``TFLITE_METADATA`` flatbuffer of a model, ``None`` when it has none."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # tflite-runtime only: no schema module to read the model with
        return None
    try:
        model = schema.Model.GetRootAs(content, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() != METADATA_NAME:
                continue
            buffer = model.Buffers(entry.Buffer())
            if buffer.Offset() > 1:  # data stored after the flatbuffer (large models)
                data = content[buffer.Offset() : buffer.Offset() + buffer.Size()]
            else:
                data = buffer.DataAsNumpy().tobytes() if buffer.DataLength() else b""
            return bytes(data)
    except Exception as exc:  # a malformed flatbuffer fails anywhere, with any error
        raise ModelError(f"{source}: cannot read the model's metadata entries: {exc!r}") from exc
    return None


def read_metadata(content: bytes, source: str) -> TfliteMetadata | None:
    """The model's TFLite metadata (first subgraph, first input and output), ``None`` when the
    model carries none; ModelError when it carries a broken one."""
    data = metadata_buffer(content, source)
    if data is None:
        return None
    if data[4:8] != METADATA_IDENTIFIER:
        raise ModelError(
            f"{source}: its TFLITE_METADATA buffer has identifier {data[4:8]!r}, "
            f"not {METADATA_IDENTIFIER!r} (a metadata schema this reader does not know)"
        )
    try:
        return _parse(content, data, source)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"{source}: its TFLite metadata is malformed: {exc!r}") from exc


def _parse(content: bytes, data: bytes, source: str) -> TfliteMetadata:
    from flatbuffers import encode, packer

    root = _Table(data, int(encode.Get(packer.uoffset, data, 0)))
    subgraphs = root.tables(MODEL_SUBGRAPHS)
    inputs = subgraphs[0].tables(SUBGRAPH_INPUTS) if subgraphs else []
    outputs = subgraphs[0].tables(SUBGRAPH_OUTPUTS) if subgraphs else []
    mean, std, color = _input_facts(inputs[0]) if inputs else (None, None, None)
    label_file = _label_file(outputs[0]) if outputs else None
    labels = _read_labels(content, label_file, source) if label_file else ()
    return TfliteMetadata(
        name=root.string(MODEL_NAME),
        description=root.string(MODEL_DESCRIPTION),
        author=root.string(MODEL_AUTHOR),
        license=root.string(MODEL_LICENSE),
        mean=mean,
        std=std,
        color=color,
        label_file=label_file,
        labels=labels,
    )


def _input_facts(
    tensor: _Table,
) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None, str | None]:
    mean = std = color = None
    content = tensor.table(TENSOR_CONTENT)
    if content is not None and content.byte(CONTENT_PROPERTIES_TYPE) == IMAGE_PROPERTIES:
        properties = content.table(CONTENT_PROPERTIES)
        if properties is not None:
            color = COLOR_SPACES.get(properties.byte(IMAGE_COLOR_SPACE))
    for unit in tensor.tables(TENSOR_PROCESS_UNITS):
        if unit.byte(UNIT_OPTIONS_TYPE) != NORMALIZATION_OPTIONS:
            continue
        options = unit.table(UNIT_OPTIONS)
        if options is not None:
            mean = options.floats(NORMALIZATION_MEAN) or None
            std = options.floats(NORMALIZATION_STD) or None
    return mean, std, color


def _label_file(tensor: _Table) -> str | None:
    """The output's first label file, preferring one without a locale (the default language)."""
    files = [f for f in tensor.tables(TENSOR_FILES) if f.byte(FILE_TYPE) == TENSOR_AXIS_LABELS]
    files.sort(key=lambda f: f.string(FILE_LOCALE) != "")
    return files[0].string(FILE_NAME) if files else None


def _read_labels(content: bytes, name: str, source: str) -> tuple[str, ...]:
    """The label file from the zip archive appended to the model, one label a line."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            text = archive.read(name).decode("utf-8")
    except zipfile.BadZipFile:
        raise ModelError(
            f"{source}: its metadata names the label file {name!r} but the model carries no "
            "associated files (no zip archive after the model)"
        ) from None
    except KeyError:
        raise ModelError(
            f"{source}: its metadata names the label file {name!r}, which is not among the "
            "model's associated files"
        ) from None
    except UnicodeDecodeError as exc:
        raise ModelError(f"{source}: label file {name!r} is not UTF-8: {exc}") from exc
    return tuple(line.strip() for line in text.splitlines() if line.strip())
