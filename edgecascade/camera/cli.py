"""``edgecascade camera build`` and ``edgecascade camera launch`` (imports nothing heavy)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def _build(args: argparse.Namespace) -> int:
    from edgecascade.camera.build import build

    sys.stdout.write(f"{build(args.out)}\n")
    return 0


def _launch(args: argparse.Namespace) -> int:
    from edgecascade.camera.launch import run

    return run(args)


class _Param(argparse.Action):
    """``--param key=value``, repeatable: any other query parameter of the page."""

    def __call__(
        self, parser: argparse.ArgumentParser, ns: argparse.Namespace, value: Any, *_: Any
    ) -> None:
        key, sep, text = str(value).partition("=")
        if not sep or not key:
            parser.error(f"--param {value!r} is not key=value")
        params = dict(getattr(ns, self.dest) or {})
        params[key] = text
        setattr(ns, self.dest, params)


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "camera",
        help="the browser camera page: build it, or run it as a device in headless chromium",
        description="The browser camera agent (web/camera/): a page that runs the edge model "
        "with LiteRT.js and publishes over MQTT over WebSockets.",
    )
    actions = parser.add_subparsers(dest="camera_command", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="npm ci + esbuild: the page into a directory")
    build.add_argument("--out", type=Path, default=None, help="output (default web/camera/dist)")
    build.set_defaults(func=_build)
    launch = actions.add_parser(
        "launch",
        help="serve the page and open it in headless chromium with a fake camera (the "
        "conformance suite's --agent-cmd); settings from EC_CONFORMANCE_* or the flags",
    )
    for name in ("ws", "site", "device", "username", "password", "gateway", "prefix"):
        launch.add_argument(f"--{name}", default=None, help=f"page setting {name}")
    launch.add_argument("--model", default=None, help=".tflite classifier, card beside it")
    launch.add_argument("--frames", default=None, help="folder of images for the fake camera")
    launch.add_argument("--video", default=None, help="a .y4m or .mjpeg film instead of frames")
    launch.add_argument("--key", default=None, help="PEM public key model offers are signed with")
    launch.add_argument("--chromium", default=None, help="chromium binary (default: on PATH)")
    launch.add_argument("--param", action=_Param, default=None, help="key=value, repeatable")
    launch.set_defaults(func=_launch)
