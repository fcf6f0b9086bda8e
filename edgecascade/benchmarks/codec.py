"""Escalation payloads: the binary frame codec against base64-in-JSON, on real frames."""

from __future__ import annotations

import argparse
import base64
import json
import time
from pathlib import Path
from typing import Any

from edgecascade.benchmarks.table import format_table
from edgecascade.shared.codec import decode, encode
from edgecascade.shared.messages import EscalationHeader, ModelRef, Prediction
from edgecascade.shared.topics import Kind, Topic

DEFAULT_FRAMES = Path(__file__).resolve().parents[2] / "data" / "fashion-mnist-eval"
SIZES = (28, 224, 640)


def _jpegs(folder: Path, count: int, size: int) -> list[bytes]:
    import cv2

    files = sorted(folder.rglob("*.png"))[:count]
    if not files:
        raise FileNotFoundError(f"no .png frames under {folder}")
    out = []
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise FileNotFoundError(f"{path} is not a readable image")
        if size != image.shape[0]:
            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC)
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        out.append(jpeg.tobytes())
    return out


def _header(size: int) -> EscalationHeader:
    return EscalationHeader(
        result_id="0190a4c8-0000-7000-8000-000000000000",
        frame_id="bag/00042.png",
        captured_at=time.time(),
        model=ModelRef(name="fashion-edge", version="1.0.0", sha256="a" * 64),
        top=[
            Prediction(index=8, label="bag", score=0.41),
            Prediction(index=0, label="x", score=0.3),
        ],
        reason="top-1 0.410 < threshold 0.600",
        width=size,
        height=size,
    )


def bench_codec(args: argparse.Namespace) -> dict[str, Any]:
    folder = args.frames or DEFAULT_FRAMES
    topic = Topic("site1", "cam1", Kind.ESCALATION)
    rows = []
    figures: dict[str, Any] = {"frames_per_size": args.count, "sizes": {}}
    for size in SIZES:
        jpegs = _jpegs(folder, args.count, size)
        header = _header(size)
        t0 = time.perf_counter()
        binary = [encode(header, jpeg) for jpeg in jpegs]
        t1 = time.perf_counter()
        for payload in binary:
            decode(topic, payload)
        t2 = time.perf_counter()
        as_json = [
            json.dumps(
                {**header.model_dump(mode="json"), "jpeg": base64.b64encode(j).decode()}
            ).encode()
            for j in jpegs
        ]
        t3 = time.perf_counter()
        for payload in as_json:
            raw = json.loads(payload)
            base64.b64decode(raw.pop("jpeg"))
            EscalationHeader.model_validate(raw)
        t4 = time.perf_counter()
        jpeg_bytes = sum(map(len, jpegs)) / len(jpegs)
        bin_bytes = sum(map(len, binary)) / len(binary)
        json_bytes = sum(map(len, as_json)) / len(as_json)
        n = len(jpegs)
        entry = {
            "jpeg_bytes_mean": jpeg_bytes,
            "binary_bytes_mean": bin_bytes,
            "base64_json_bytes_mean": json_bytes,
            "binary_overhead_bytes_mean": bin_bytes - jpeg_bytes,
            "base64_vs_binary_size_ratio": json_bytes / bin_bytes,
            "binary_encode_us": (t1 - t0) / n * 1e6,
            "binary_decode_us": (t2 - t1) / n * 1e6,
            "base64_encode_us": (t3 - t2) / n * 1e6,
            "base64_decode_us": (t4 - t3) / n * 1e6,
            "base64_vs_binary_decode_time_ratio": (t4 - t3) / max(t2 - t1, 1e-9),
        }
        figures["sizes"][str(size)] = entry
        rows.append(
            [
                f"{size}x{size}",
                round(jpeg_bytes),
                round(bin_bytes),
                round(json_bytes),
                entry["base64_vs_binary_size_ratio"],
                entry["binary_decode_us"],
                entry["base64_decode_us"],
            ]
        )
    figures["table"] = format_table(
        ["frame", "jpeg B", "binary B", "b64-json B", "size ratio", "bin dec us", "b64 dec us"],
        rows,
    )
    return figures
