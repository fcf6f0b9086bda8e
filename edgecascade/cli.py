"""``edgecascade <command>``: the console script.

Each component contributes its subcommand through an ``add_parser`` function in its own ``cli``
module; those modules import nothing heavy, so ``edgecascade --help`` is fast and a device without
the
cloud extra can still run ``edgecascade agent``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from edgecascade.shared.errors import EdgeCascadeError


def build_parser() -> argparse.ArgumentParser:
    from edgecascade.bench import add_parser as add_bench
    from edgecascade.camera.cli import add_parser as add_camera
    from edgecascade.cascade_pick import add_parser as add_cascade
    from edgecascade.cloud.cli import add_parser as add_cloud
    from edgecascade.cloud.training.cli import add_trainer_parser
    from edgecascade.configref import add_parser as add_config_reference
    from edgecascade.conformance.cli import add_parser as add_conformance
    from edgecascade.contract_cli import add_parser as add_contract
    from edgecascade.demo_cli import add_parser as add_demo
    from edgecascade.deploy.cli import add_parser as add_deploy
    from edgecascade.edge_agent.cli import add_parser as add_agent
    from edgecascade.gateway.cli import add_parser as add_gateway
    from edgecascade.models_cli import add_parser as add_models
    from edgecascade.topicref import add_parser as add_topic_reference
    from edgecascade.train_cli import add_train_parser

    parser = argparse.ArgumentParser(
        prog="edgecascade",
        description=(
            "Edge-cloud collaborative inference over MQTT. Devices run a small model and escalate "
            "the frames they are unsure about; a gateway forwards with store-and-forward; "
            "the cloud stores everything and re-runs a heavier model."
        ),
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity (default: %(default)s)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_agent(sub)
    add_gateway(sub)
    add_cloud(sub, extra_actions=[add_train_parser, add_trainer_parser])
    add_demo(sub)
    add_models(sub)
    add_bench(sub)
    add_cascade(sub)
    add_config_reference(sub)
    add_topic_reference(sub)
    add_contract(sub)
    add_conformance(sub)
    add_deploy(sub)
    add_camera(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        result: int = args.func(args)
    except EdgeCascadeError as exc:
        sys.stderr.write(f"edgecascade {args.command}: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
