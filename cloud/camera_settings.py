"""``[camera]``: the browser camera page the cloud serves (``/camera/``).

The page is built from ``web/camera/`` (``edgecascade camera build``); its bundle and LiteRT.js's
WebAssembly files are too large to commit (two builds of 9 MB each), so the cloud serves the
directory the build wrote. The model the page runs is a float-input classifier with its card
beside it (``fashion_edge_fp32.tflite`` + ``fashion_edge_fp32.json``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from edgecascade.shared.config import Section


class CameraSection(Section):
    """The browser camera page and the model it runs."""

    dir: Path | None = Field(
        None,
        description="Directory of the built camera page (edgecascade camera build --out DIR); "
        "unset: /camera/ answers 404 saying so.",
    )
    model: Path | None = Field(
        None,
        description="The .tflite classifier the page runs, its JSON card beside it "
        "(same name, .json); served as /camera/model.tflite and /camera/model.json.",
    )

    @model_validator(mode="after")
    def _model_with_page(self) -> CameraSection:
        if self.model is not None and self.model.suffix != ".tflite":
            raise ValueError(f"camera.model {str(self.model)!r} is not a .tflite file")
        if self.model is not None and self.dir is None:
            raise ValueError("camera.model is set but camera.dir is not: the page serves it")
        return self
