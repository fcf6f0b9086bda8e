"""``/camera/``: the browser camera agent, served like the dashboard's pages.

The page (built from ``web/camera/`` by ``edgecascade camera build``) turns a phone or laptop
into a camera of a site: it runs the edge model in the browser with LiteRT.js and talks to the
site broker over MQTT over WebSockets with the device's own credentials, which the user types in
(or the URL's query carries). The page and the model hold no data of the fleet, so they are
served without a token, as the dashboard's static files are; every message the page sends is
checked by the broker's password file and ACL. The page installs the models the cloud offers
it (signed manifests, checked with ``/camera/signing-key.pem``), as the Python agent does.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from edgecascade.cloud.errors import SigningKeyUnavailable
from edgecascade.cloud.settings import CloudSettings

NOT_BUILT = (
    "the camera page is not configured: build it with `edgecascade camera build --out DIR` "
    "and set camera.dir (EC_CLOUD_CAMERA__DIR) to DIR"
)
NO_MODEL = "no camera model: set camera.model (EC_CLOUD_CAMERA__MODEL) to a .tflite file"


def mount(app: FastAPI, settings: CloudSettings) -> None:
    """Serve ``/camera/``: the built page, the model and its card, and the public key the
    page checks model offers with."""
    camera = settings.camera
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

    @router.get("/camera/signing-key.pem")
    def public_key() -> Response:
        """The manifest signing key's public half (as ``/api/models/signing-key``, which needs a
        token: the page has none, and a public key is no secret)."""
        from edgecascade.cloud.registry import signing_key
        from edgecascade.shared.manifest import public_pem

        try:
            key = signing_key(settings).public_key()
        except SigningKeyUnavailable as exc:
            raise HTTPException(404, str(exc)) from exc
        return Response(public_pem(key), media_type="application/x-pem-file")

    if camera.dir is None:

        @router.get("/camera/{path:path}")
        def not_built(path: str) -> None:
            raise HTTPException(404, NOT_BUILT)

    app.include_router(router)
    if camera.dir is not None:
        app.mount("/camera", StaticFiles(directory=camera.dir, html=True), name="camera")
