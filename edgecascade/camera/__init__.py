"""The browser camera agent's tooling: build the page (:mod:`.build`), and run it as a device in
headless chromium with a fake camera (:mod:`.launch`), the ``--agent-cmd`` of the conformance
suite. The page itself is JavaScript under ``web/camera/``; the cloud serves the build
(:mod:`edgecascade.cloud.camera_page`)."""
