"""Helpers every component's command line uses: common flags, signals, overrides."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from typing import Any

SubParsers = argparse._SubParsersAction


def add_config_flag(parser: argparse.ArgumentParser, env_prefix: str) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=(
            f"TOML config file; environment variables {env_prefix}* override it, "
            "flags override both"
        ),
    )


def add_mqtt_flags(
    parser: argparse.ArgumentParser, name: str = "mqtt", what: str = "broker"
) -> None:
    dest = name.replace("-", "_")
    parser.add_argument(f"--{name}-host", dest=f"{dest}_host", metavar="HOST", help=f"{what} host")
    parser.add_argument(
        f"--{name}-port", dest=f"{dest}_port", type=int, metavar="PORT", help=f"{what} TCP port"
    )


def mqtt_overrides(args: argparse.Namespace, name: str = "mqtt") -> dict[str, Any]:
    dest = name.replace("-", "_")
    out: dict[str, Any] = {}
    if getattr(args, f"{dest}_host", None) is not None:
        out["host"] = getattr(args, f"{dest}_host")
    if getattr(args, f"{dest}_port", None) is not None:
        out["port"] = getattr(args, f"{dest}_port")
    return out


def given(**values: Any) -> dict[str, Any]:
    """Only the flags the user actually gave (argparse leaves the others None)."""
    return {k: v for k, v in values.items() if v is not None and v != {}}


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM: the one stop signal a component's loops watch."""
    stop = threading.Event()

    def handle(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    return stop
