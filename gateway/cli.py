"""``edgecascade gateway``: run the site gateway."""

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
        "gateway",
        help="run a site gateway",
        description=(
            "Subscribe to the devices of one site on the site broker, validate and de-duplicate "
            "every message (invalid ones go to the dead-letter topic with the reason), keep it in "
            "an on-disk outbox and forward it to the cloud broker: results in batches, telemetry "
            "rolled up per device and window, escalations first. Verdicts and model offers go "
            "the other way; model files are fetched once per site and served from a disk cache. "
            "Keeps forwarding what it holds when a link returns."
        ),
    )
    add_config_flag(parser, "EC_GATEWAY_")
    parser.add_argument("--site", help="site id served (default: site1)")
    parser.add_argument("--gateway-id", help="this gateway's id (default: gateway)")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="outbox directory")
    parser.add_argument(
        "--telemetry-window",
        type=float,
        metavar="SECONDS",
        help="roll telemetry up per device over this window; 0 forwards every sample (30)",
    )
    parser.add_argument(
        "--batch-linger-ms",
        type=float,
        metavar="MS",
        help="wait up to this long for a batch of results to fill (200)",
    )
    parser.add_argument(
        "--model-public-key", type=Path, metavar="PEM", help="key that signs model manifests"
    )
    add_mqtt_flags(parser, "site-mqtt", "site broker")
    add_mqtt_flags(parser, "cloud-mqtt", "cloud broker")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgecascade.gateway.forwarder import Gateway
    from edgecascade.gateway.settings import GatewaySettings
    from edgecascade.shared.cli import stop_on_signals
    from edgecascade.shared.config import load_settings

    overrides = given(
        site=args.site,
        gateway_id=args.gateway_id,
        data_dir=args.data_dir,
        telemetry_window_s=args.telemetry_window,
        batch=given(linger_ms=args.batch_linger_ms),
        model_public_key=args.model_public_key,
        site_mqtt=mqtt_overrides(args, "site-mqtt"),
        cloud_mqtt=mqtt_overrides(args, "cloud-mqtt"),
    )
    settings = load_settings(GatewaySettings, args.config, overrides)
    Gateway(settings).run(stop_on_signals())
    return 0
