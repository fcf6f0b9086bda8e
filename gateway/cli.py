"""``edgecascade gateway``: run the site gateway."""

from __future__ import annotations

import argparse
from pathlib import Path

from shared.cli import SubParsers, add_config_flag, add_mqtt_flags, given, mqtt_overrides


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "gateway",
        help="run a site gateway",
        description=(
            "Subscribe to the devices of one site on the site broker, validate every message, "
            "keep it in an on-disk outbox and forward it to the cloud broker. Keeps forwarding "
            "what it holds when the uplink returns."
        ),
    )
    add_config_flag(parser, "EC_GATEWAY_")
    parser.add_argument("--site", help="site id served (default: site1)")
    parser.add_argument("--gateway-id", help="this gateway's id (default: gateway)")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="outbox directory")
    add_mqtt_flags(parser, "site-mqtt", "site broker")
    add_mqtt_flags(parser, "cloud-mqtt", "cloud broker")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gateway.forwarder import Gateway
    from gateway.settings import GatewaySettings
    from shared.cli import stop_on_signals
    from shared.config import load_settings

    overrides = given(
        site=args.site,
        gateway_id=args.gateway_id,
        data_dir=args.data_dir,
        site_mqtt=mqtt_overrides(args, "site-mqtt"),
        cloud_mqtt=mqtt_overrides(args, "cloud-mqtt"),
    )
    settings = load_settings(GatewaySettings, args.config, overrides)
    Gateway(settings).run(stop_on_signals())
    return 0
