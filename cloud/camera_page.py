"""``/camera/``: the browser camera agent, served like the dashboard's pages.

The page (built from ``web/camera/`` by ``edgecascade camera build``) turns a phone or laptop
into a camera of a site: it runs the edge model in the browser with LiteRT.js and talks to the
site broker over MQTT over WebSockets with the device's own credentials, which the user types in
(or the URL's query carries). The page and the model hold no data of the fleet, so they are
served without a token, as the dashboard's static files are; every message the page sends is
checked by the broker's password file and ACL.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from edgecascade.cloud.camera_settings import CameraSection

NOT_BUILT = (
    "the camera page is not configured: build it with `edgecascade camera build --out DIR` "
    "and set camera.dir (EC_CLOUD_CAMERA__DIR) to DIR"
)
NO_MODEL = "no camera model: set camera.model (EC_CLOUD_CAMERA__MODEL) to a .tflite file"


def mount(app: FastAPI, camera: CameraSection) -> None:
    """Serve ``/camera/``: the built page and, when set, the model and its card."""
    router = APIRouter(tags=["camera"], include_in_schema=False)

    @router.get("/camera")
    def redirect() -> RedirectResponse:
        return RedirectResponse("/camera/")

    @router.get("/camera/model.tflite")
    def model() -> FileResponse:
        if camera.model is None:
            raise HTTPException(404, NO_MODEL)
        return FileResponse(camera.model, media_type="application/octet-stream")

    @router.get("/camera/model.json")
    def card() -> FileResponse:
        if camera.model is None:
            raise HTTPException(404, NO_MODEL)
        return FileResponse(camera.model.with_suffix(".json"), media_type="application/json")

    if camera.dir is None:

        @router.get("/camera/{path:path}")
        def not_built(path: str) -> None:
            raise HTTPException(404, NOT_BUILT)

    app.include_router(router)
    if camera.dir is not None:
        app.mount("/camera", StaticFiles(directory=camera.dir, html=True), name="camera")
