"""``edgecascade agent``: run the device agent."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgecascade.shared.cli import (
    SubParsers,
    add_config_flag,
    add_mqtt_flags,
    given,
    mqtt_overrides,
)


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "agent",
        help="run a camera device agent",
        description=(
            "Read frames, classify them with a small LiteRT model, publish each result and "
            "escalate the frames the model is unsure about. Results wait in an on-disk outbox "
            "while the broker is unreachable."
        ),
    )
    add_config_flag(parser, "EC_AGENT_")
    parser.add_argument("--site", help="site id (default: site1)")
    parser.add_argument("--device", help="device id, unique within the site (default: cam1)")
    parser.add_argument("--model", type=Path, metavar="FILE", help="the .tflite model to run")
    media = parser.add_mutually_exclusive_group()
    media.add_argument("--frames", type=Path, metavar="DIR", help="image folder to replay")
    media.add_argument("--video", type=Path, metavar="FILE", help="video file to play")
    media.add_argument("--camera", type=int, metavar="INDEX", help="USB/V4L2 camera index")
    media.add_argument("--stream", metavar="URL", help="RTSP or HTTP(S) stream URL")
    parser.add_argument("--fps", type=float, help="frames per second (default: 5)")
    parser.add_argument(
        "--loop", action="store_true", default=None, help="replay the folder forever"
    )
    parser.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    parser.add_argument(
        "--threshold", type=float, help="escalate when top-1 probability is below this (0.6)"
    )
    parser.add_argument(
        "--gating",
        type=float,
        metavar="DIFF",
        help="skip frames whose mean pixel difference to the last processed one is below DIFF",
    )
    parser.add_argument(
        "--delegate",
        metavar="LIB",
        help="run the model on this LiteRT delegate library (Edge TPU: libedgetpu.so.1; "
        "GPU/NPU: the vendor's .so); one that fails to load stops the agent with the reason",
    )
    parser.add_argument(
        "--delegate-fallback",
        action="store_true",
        default=None,
        help="with --delegate: when it fails, warn and run on the CPU instead of stopping",
    )
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="outbox directory")
    parser.add_argument(
        "--no-gateway",
        action="store_true",
        help="publish whenever connected instead of waiting for the site gateway to be online",
    )
    add_mqtt_flags(parser, "mqtt", "site broker")
    parser.set_defaults(func=run)
    actions = parser.add_subparsers(
        dest="agent_action",
        title="actions",
        metavar="[report]",
        description="Without an action, run the agent until SIGINT/SIGTERM.",
    )
    report = actions.add_parser(
        "report",
        help="the monitoring report of this device's agent, from its local log",
        description=(
            "Read the agent's monitoring log (<data_dir>/monitor.jsonl: one sample per telemetry "
            "message: CPU, memory, disk, temperature, inference count, mean latency, uptimes) "
            "and print each figure's min, mean, max and last value; --output writes the report "
            "as JSON (every sample, timestamped, and the summary). Works while the agent runs."
        ),
    )
    # SUPPRESS: a value given before ``report`` is not reset by the action's defaults.
    report.add_argument(
        "--config", type=Path, metavar="FILE", default=argparse.SUPPRESS, help="agent TOML config"
    )
    report.add_argument(
        "--data-dir", type=Path, metavar="DIR", default=argparse.SUPPRESS, help="agent data dir"
    )
    report.add_argument("--output", type=Path, metavar="FILE", help="write the JSON report here")
    report.add_argument(
        "--last", type=int, metavar="N", help="only the newest N samples (default: all kept)"
    )
    report.set_defaults(func=write_report)


def write_report(args: argparse.Namespace) -> int:
    import json
    import sys

    from edgecascade.edge_agent.monitor import build_report, read_samples, render
    from edgecascade.edge_agent.settings import AgentSettings
    from edgecascade.shared.config import load_settings
    from edgecascade.shared.errors import ConfigError

    if args.last is not None and args.last < 1:
        raise ConfigError(f"--last must be at least 1, got {args.last}")
    settings = load_settings(AgentSettings, args.config, given(data_dir=args.data_dir))
    samples = list(read_samples(settings.data_dir))
    if not samples:
        raise ConfigError(
            f"no monitoring samples in {settings.data_dir / 'monitor.jsonl'}: has the agent run "
            "with this data directory?"
        )
    report = build_report(
        samples[-args.last :] if args.last else samples, settings.site, settings.device
    )
    sys.stdout.write(render(report) + "\n")
    if args.output is not None:
        args.output.write_text(json.dumps(report, indent=2) + "\n")
        sys.stdout.write(f"wrote {args.output}\n")
    return 0


def run(args: argparse.Namespace) -> int:
    from edgecascade.edge_agent.agent import Agent
    from edgecascade.edge_agent.settings import AgentSettings
    from edgecascade.shared.cli import stop_on_signals
    from edgecascade.shared.config import load_settings

    overrides = given(
        site=args.site,
        device=args.device,
        model=args.model,
        data_dir=args.data_dir,
        mqtt=mqtt_overrides(args),
        source=given(
            kind=_source_kind(args),
            path=args.frames or args.video,
            index=args.camera,
            url=args.stream,
            fps=args.fps,
            loop=args.loop,
            max_frames=args.max_frames,
        ),
        gating=given(enabled=True if args.gating is not None else None, threshold=args.gating),
        escalation=given(threshold=args.threshold),
        runtime=given(delegate=args.delegate, delegate_fallback=args.delegate_fallback),
    )
    if args.no_gateway:
        overrides["gateway_id"] = None
    settings = load_settings(AgentSettings, args.config, overrides)
    Agent(settings).run(stop_on_signals())
    return 0


def _source_kind(args: argparse.Namespace) -> str | None:
    for flag, kind in (("frames", "folder"), ("video", "video"), ("camera", "camera")):
        if getattr(args, flag) is not None:
            return kind
    return "stream" if args.stream is not None else None
