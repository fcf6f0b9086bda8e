"""``edgecascade deploy``: a private CA and broker credentials for a fleet.

``pki`` makes the CA and the brokers' (and optionally clients') certificates;
``provision-device``, ``provision-gateway`` and ``provision-cloud`` add one identity to a broker's
password and ACL files and write the environment file it runs with. The broker reads changed
files on SIGHUP (``systemctl reload mosquitto``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edgecascade.shared.cli import SubParsers

if TYPE_CHECKING:
    from edgecascade.deploy.provision import BrokerFiles, Endpoint

DEFAULT_CA = Path("/etc/edgecascade/ca.crt")


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "deploy",
        help="make certificates and provision devices, gateways and the cloud on the brokers",
        description=(
            "Deployment helpers. See docs/DEPLOYMENT.md for the whole procedure: a private CA, "
            "Mosquitto with TLS, passwords and per-device ACLs, systemd units, containers."
        ),
    )
    actions = parser.add_subparsers(dest="deploy_action", required=True, metavar="ACTION")
    _add_pki(actions)
    _add_device(actions)
    _add_gateway(actions)
    _add_cloud(actions)
    _add_revoke(actions)


def _add_pki(actions: SubParsers[argparse.ArgumentParser]) -> None:
    pki = actions.add_parser(
        "pki",
        help="create the private CA (once) and issue broker and client certificates",
        description=(
            "Create DIR/ca.crt and DIR/ca.key unless they exist, then issue a certificate for "
            "each --server (a broker: the names and addresses clients connect to) and --client. "
            "Keys are written with mode 0600; keep ca.key off the brokers."
        ),
    )
    pki.add_argument("dir", type=Path, metavar="DIR", help="PKI directory")
    pki.add_argument(
        "--server",
        action="append",
        default=[],
        metavar="NAME=HOST[,HOST...]",
        help="a broker certificate NAME.crt valid for these DNS names and IP addresses",
    )
    pki.add_argument(
        "--client", action="append", default=[], metavar="NAME", help="a client certificate"
    )
    pki.set_defaults(func=run_pki)


def _add_endpoint(parser: argparse.ArgumentParser, name: str, what: str, port: int) -> None:
    parser.add_argument(
        f"--{name}-host",
        required=True,
        metavar="HOST",
        help=f"{what} host name, as the machine reaches it",
    )
    parser.add_argument(
        f"--{name}-port",
        type=int,
        default=port,
        metavar="PORT",
        help=f"{what} TLS port (default: %(default)s)",
    )
    parser.add_argument(
        f"--{name}-dir",
        type=Path,
        required=True,
        metavar="DIR",
        help=f"{what}'s passwd and acl files (created if absent)",
    )


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ca-file",
        type=Path,
        default=DEFAULT_CA,
        metavar="PATH",
        help="where the CA certificate is on the machine (default: %(default)s)",
    )
    parser.add_argument(
        "--no-tls", action="store_true", help="plain MQTT (only on a closed network)"
    )
    parser.add_argument("--prefix", default="ec", help="topic prefix (default: ec)")
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="write the .env file here"
    )


def _add_device(actions: SubParsers[argparse.ArgumentParser]) -> None:
    device = actions.add_parser(
        "provision-device",
        help="add a camera to its site broker and write its agent.env",
        description=(
            "Give SITE/DEVICE a password on the site broker and an ACL entry that lets it publish "
            "only under its own topics and read only its own verdicts, models and commands; "
            "write OUT/agent.env (identity, broker, password) for the agent."
        ),
    )
    device.add_argument("site", help="site id")
    device.add_argument("device", help="device id, unique within the site")
    device.add_argument(
        "--gateway-id", default="gateway", help="the site gateway's id (default: gateway)"
    )
    device.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="TAG",
        help="a tag of the device (zone:north, pilot; repeat for more): its state reports it and "
        "the cloud targets configs and rollouts by tag expressions",
    )
    _add_endpoint(device, "broker", "the site broker", 8883)
    _add_common(device)
    device.set_defaults(func=run_device)


def _add_gateway(actions: SubParsers[argparse.ArgumentParser]) -> None:
    gateway = actions.add_parser(
        "provision-gateway",
        help="add a site gateway to the site and cloud brokers and write its gateway.env",
        description=(
            "Give the gateway of SITE a password on the site broker and on the cloud broker, "
            "each with an ACL entry for the whole site; write OUT/gateway.env."
        ),
    )
    gateway.add_argument("site", help="site id")
    gateway.add_argument("--gateway-id", default="gateway", help="gateway id (default: gateway)")
    _add_endpoint(gateway, "site", "the site broker", 8883)
    _add_endpoint(gateway, "cloud", "the cloud broker", 8883)
    _add_common(gateway)
    gateway.set_defaults(func=run_gateway)


def _add_cloud(actions: SubParsers[argparse.ArgumentParser]) -> None:
    cloud = actions.add_parser(
        "provision-cloud",
        help="add the cloud services to the cloud broker and write their cloud.env",
        description=(
            "Give the cloud services (API and ingest, workers) a password on the cloud broker "
            "with an ACL entry for every site; write OUT/cloud.env."
        ),
    )
    cloud.add_argument("--username", default="cloud", help="MQTT user name (default: cloud)")
    _add_endpoint(cloud, "broker", "the cloud broker", 8883)
    _add_common(cloud)
    cloud.set_defaults(func=run_cloud)


def _add_revoke(actions: SubParsers[argparse.ArgumentParser]) -> None:
    revoke = actions.add_parser(
        "revoke",
        help="remove an identity's password and ACL entry from a broker",
        description=(
            "Remove USER (a camera is SITE/DEVICE, a gateway SITE/GATEWAY) from DIR/passwd and "
            "DIR/acl. Reload the broker (systemctl reload mosquitto): new connections with the "
            "old password are then refused."
        ),
    )
    revoke.add_argument("user", help="the MQTT user name, e.g. site1/cam1")
    revoke.add_argument(
        "--broker-dir",
        type=Path,
        required=True,
        metavar="DIR",
        help="the broker's passwd and acl files",
    )
    revoke.set_defaults(func=run_revoke)


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


def run_pki(args: argparse.Namespace) -> int:
    from edgecascade.deploy.errors import DeployError
    from edgecascade.deploy.pki import check_hosts, ensure_ca, issue

    servers = []
    for spec in args.server:
        name, sep, hosts = spec.partition("=")
        if not sep or not name or not hosts:
            raise DeployError(f"--server {spec!r}: expected NAME=HOST[,HOST...]")
        servers.append((name, [h.strip() for h in hosts.split(",") if h.strip()]))
        check_hosts(servers[-1][1])  # every name checked before anything is written
    ca, created = ensure_ca(args.dir)
    _say(f"{'created' if created else 'using'} CA {ca.cert}")
    for name, hosts in servers:
        issued = issue(args.dir, name, server_hosts=hosts)
        _say(f"server {issued.cert} ({', '.join(hosts)})")
    for name in args.client:
        _say(f"client {issue(args.dir, name).cert}")
    return 0


def _endpoint(args: argparse.Namespace, name: str) -> tuple[BrokerFiles, Endpoint]:
    from edgecascade.deploy.provision import BrokerFiles, Endpoint

    ca = None if args.no_tls else args.ca_file
    host, port = getattr(args, f"{name}_host"), getattr(args, f"{name}_port")
    return BrokerFiles(getattr(args, f"{name}_dir")), Endpoint(host, port, ca)


def _done(env: Path | None, *brokers: Path) -> int:
    if env is not None:
        _say(f"wrote {env}")
    for directory in brokers:
        _say(f"updated {directory / 'passwd'} and {directory / 'acl'}: reload that broker")
    return 0


def run_device(args: argparse.Namespace) -> int:
    from edgecascade.deploy.provision import provision_device

    files, endpoint = _endpoint(args, "broker")
    env = provision_device(
        args.site,
        args.device,
        files,
        endpoint,
        args.out,
        gateway_id=args.gateway_id,
        prefix=args.prefix,
        tags=args.tag,
    )
    return _done(env, files.directory)


def run_gateway(args: argparse.Namespace) -> int:
    from edgecascade.deploy.provision import provision_gateway

    site_files, site_endpoint = _endpoint(args, "site")
    cloud_files, cloud_endpoint = _endpoint(args, "cloud")
    env = provision_gateway(
        args.site,
        site_files,
        site_endpoint,
        cloud_files,
        cloud_endpoint,
        args.out,
        gateway_id=args.gateway_id,
        prefix=args.prefix,
    )
    return _done(env, site_files.directory, cloud_files.directory)


def run_cloud(args: argparse.Namespace) -> int:
    from edgecascade.deploy.provision import provision_cloud

    files, endpoint = _endpoint(args, "broker")
    env = provision_cloud(files, endpoint, args.out, username=args.username, prefix=args.prefix)
    return _done(env, files.directory)


def run_revoke(args: argparse.Namespace) -> int:
    from edgecascade.deploy.mosquitto import remove_user
    from edgecascade.deploy.provision import BrokerFiles

    files = BrokerFiles(args.broker_dir)
    remove_user(files.passwd, files.acl, args.user)
    return _done(None, files.directory)
