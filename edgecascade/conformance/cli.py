"""``edgecascade conformance run --agent-cmd "..."``: test an agent, in any language, against the
MQTT contract on a real site broker, a real gateway and a cloud broker the suite plays the cloud on.

The agent is started with ``/bin/sh -c "<agent-cmd>"`` and its settings in ``EC_CONFORMANCE_*``
environment variables (docs/contract/CONFORMANCE.md): broker host, port and websockets URL, site,
device and gateway ids, topic prefix, user name and password, model, offer public key, frames,
a data directory. Each check prints pass, fail or skip with the reason; ``--output`` writes them
as JSON. Exit status 1 when a check failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgecascade.shared.cli import SubParsers


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    from edgecascade.conformance.defaults import (
        DEFAULT_FRAMES,
        DEFAULT_MODEL,
        DEFAULT_OFFER_MODEL,
        GROUP_NAMES,
    )

    parser = subparsers.add_parser(
        "conformance",
        help="test an agent (any language) against the MQTT contract",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="conformance_action", required=True, metavar="ACTION")
    run = actions.add_parser("run", help="run the suite", description=__doc__)
    launch = run.add_mutually_exclusive_group(required=True)
    launch.add_argument("--agent-cmd", metavar="CMD", help="shell command that starts the agent")
    launch.add_argument(
        "--no-launch",
        action="store_true",
        help="print the settings and wait for an agent started by hand (the LWT check is skipped)",
    )
    run.add_argument("--output", type=Path, metavar="FILE", help="write the checks as JSON here")
    run.add_argument(
        "--check",
        action="append",
        choices=GROUP_NAMES,
        metavar="NAME",
        help="run only these groups (repeat; state always runs; default all: "
        + ", ".join(GROUP_NAMES)
        + ")",
    )
    run.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL, help="model the agent starts with"
    )
    run.add_argument(
        "--offer-model",
        type=Path,
        default=DEFAULT_OFFER_MODEL,
        help="model the valid offer installs",
    )
    run.add_argument(
        "--frames", type=Path, default=DEFAULT_FRAMES, help="image folder for the agent"
    )
    run.add_argument("--site", default="site1", help="site id (default: %(default)s)")
    run.add_argument("--device", default="cam1", help="device id (default: %(default)s)")
    run.add_argument(
        "--bind",
        default="127.0.0.1",
        help="address the site broker listens on (0.0.0.0: reachable from other machines)",
    )
    run.add_argument(
        "--advertise",
        default=None,
        metavar="HOST",
        help="host name or address the agent is told to connect to, e.g. this machine's on the "
        "phone's network (default: the --bind address, or 127.0.0.1)",
    )
    run.add_argument(
        "--connect-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds to wait for the agent's online state (default: %(default)s)",
    )
    run.add_argument(
        "--timeout",
        type=float,
        default=20.0,
        metavar="S",
        help="seconds to wait for each awaited message (default: %(default)s)",
    )
    run.add_argument(
        "--offer-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds for the valid offer to be applied (default: %(default)s)",
    )
    run.add_argument(
        "--lwt-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds after SIGKILL for the offline state (default: %(default)s)",
    )
    run.add_argument(
        "--workdir",
        type=Path,
        metavar="DIR",
        help="keep brokers' and gateway's files and logs here",
    )
    run.set_defaults(func=run_suite)


def run_suite(args: argparse.Namespace) -> int:
    from edgecascade.conformance.context import Timeouts
    from edgecascade.conformance.defaults import GROUP_NAMES
    from edgecascade.conformance.runner import Options, run_conformance
    from edgecascade.conformance.site import SiteIds
    from edgecascade.shared.topics import validate_id

    def say(text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    options = Options(
        agent_cmd=args.agent_cmd,
        launch=not args.no_launch,
        model=args.model,
        offer_model=args.offer_model,
        frames=args.frames,
        groups=args.check or GROUP_NAMES,
        timeouts=Timeouts(
            connect=args.connect_timeout,
            event=args.timeout,
            offer=args.offer_timeout,
            lwt=args.lwt_timeout,
        ),
        ids=SiteIds(validate_id(args.site, "site id"), validate_id(args.device, "device id")),
        bind=args.bind,
        advertise=args.advertise,
        workdir=args.workdir,
        say=say,
    )
    report = run_conformance(options)
    say(report.table())
    if args.output is not None:
        args.output.write_text(report.to_json())
        say(f"wrote {args.output}")
    return 0 if report.passed else 1
