"""``edgecascade cloud``: serve the API and the ingest; ``edgecascade cloud migrate``.

Only :mod:`argparse` is imported here; FastAPI, SQLAlchemy and uvicorn are imported inside the
handlers, so ``edgecascade --help`` stays fast and devices need not install the cloud extra.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgecascade.cloud.settings import CloudSettings

logger = logging.getLogger(__name__)

# (flag, settings path, type, help); the settings path is where an override lands.
_STORE_FLAGS: list[tuple[str, tuple[str, ...], type, str]] = [
    (
        "--database-url",
        ("database_url",),
        str,
        "SQLAlchemy database URL (default: a SQLite file in the data directory)",
    ),
    ("--data-dir", ("data_dir",), Path, "directory of the SQLite file and the frame blobs"),
]
_MQTT_FLAGS: list[tuple[str, tuple[str, ...], type, str]] = [
    ("--mqtt-host", ("mqtt", "host"), str, "host of the cloud MQTT broker"),
    ("--mqtt-port", ("mqtt", "port"), int, "port of the cloud MQTT broker (default 1883)"),
]
_SERVE_FLAGS: list[tuple[str, tuple[str, ...], type, str]] = [
    ("--host", ("http", "host"), str, "address the HTTP API binds to (default 127.0.0.1)"),
    ("--port", ("http", "port"), int, "TCP port of the HTTP API (default 8080)"),
    *_MQTT_FLAGS,
]
_WORKER_FLAGS: list[tuple[str, tuple[str, ...], type, str]] = [
    (
        "--worker-id",
        ("worker", "worker_id"),
        str,
        "unique, stable id of this worker: its MQTT session (default worker-1)",
    ),
    ("--model", ("worker", "model"), Path, "the cloud model, a .tflite with its card"),
    ("--threads", ("worker", "threads"), int, "interpreter threads (default 1)"),
    (
        "--share-group",
        ("worker", "share_group"),
        str,
        "shared-subscription group the workers split the frames in (default reinfer)",
    ),
]
_ALL_FLAGS = _STORE_FLAGS + _SERVE_FLAGS + _WORKER_FLAGS


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    extra_actions: Sequence[
        Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]
    ] = (),
) -> None:
    """Register ``cloud`` (and its actions) on the top-level parser; ``extra_actions`` add
    actions whose code lives outside the cloud package (``train``, which needs torch)."""
    from edgecascade.cloud.dataset_cli import add_dataset_parser

    parser = subparsers.add_parser(
        "cloud",
        help="run the cloud service: HTTP API and MQTT ingest",
        description=(
            "Run the cloud service: migrate the database, ingest results, escalations, telemetry "
            "and device state from the cloud MQTT broker (acknowledged only once stored), and "
            "serve the HTTP API. Settings come from --config, then EC_CLOUD_* environment "
            "variables (e.g. EC_CLOUD_MQTT__HOST), then these flags."
        ),
    )
    _add_common(parser, _STORE_FLAGS + _SERVE_FLAGS, suppress=False)
    parser.set_defaults(func=serve)
    actions = parser.add_subparsers(
        dest="cloud_action",
        title="actions",
        metavar="[migrate | worker | token | keys | dataset | train | trainer]",
        description="Without an action, serve the API and the ingest until SIGINT/SIGTERM.",
    )
    migrate_parser = actions.add_parser(
        "migrate",
        help="bring the database schema up to date and exit",
        description=(
            "Run the Alembic migrations (alembic upgrade head) on the configured database and "
            "exit. The server does this at start too; run it alone before rolling out replicas."
        ),
    )
    # SUPPRESS: values given before ``migrate`` are not reset by the subcommand's defaults.
    _add_common(migrate_parser, _STORE_FLAGS, suppress=True)
    migrate_parser.set_defaults(func=migrate)
    worker_parser = actions.add_parser(
        "worker",
        help="run a re-inference worker: the cloud model on escalated frames",
        description=(
            "Consume escalated frames from the cloud broker through an MQTT 5 shared "
            "subscription (workers in one group split them), run the cloud model, store each "
            "verdict once (keyed by the escalation) and publish it back to the device. Run as "
            "many as the frames need, each with its own --worker-id. The database must be "
            "migrated (edgecascade cloud migrate, or a running edgecascade cloud)."
        ),
    )
    _add_common(worker_parser, _STORE_FLAGS + _MQTT_FLAGS + _WORKER_FLAGS, suppress=True)
    worker_parser.set_defaults(func=work)
    token_parser = actions.add_parser(
        "token",
        help="create, list or revoke API tokens",
        description=(
            "API tokens authenticate HTTP API calls (Authorization: Bearer <token>). Roles: "
            "viewer reads; operator also steers the fleet; admin also manages tokens and models. "
            "A new token is printed once; the database keeps only its sha256."
        ),
    )
    _add_common(token_parser, _STORE_FLAGS, suppress=True)
    token_actions = token_parser.add_subparsers(
        dest="token_action", required=True, metavar="ACTION"
    )
    create = token_actions.add_parser(
        "create", help="create a token and print it", description="Create a token; print it once."
    )
    create.add_argument("--name", required=True, help="unique name of the holder, e.g. grafana")
    create.add_argument(
        "--role", required=True, choices=["viewer", "operator", "admin"], help="what it may do"
    )
    _add_common(create, _STORE_FLAGS, suppress=True)
    create.set_defaults(func=token_create)
    listing = token_actions.add_parser(
        "list", help="list tokens (never the tokens themselves)", description="List tokens."
    )
    _add_common(listing, _STORE_FLAGS, suppress=True)
    listing.set_defaults(func=token_list)
    revoke = token_actions.add_parser(
        "revoke", help="revoke a token by name", description="Revoke a token: refused from now on."
    )
    revoke.add_argument("name", help="the token's name")
    _add_common(revoke, _STORE_FLAGS, suppress=True)
    revoke.set_defaults(func=token_revoke)
    keys = actions.add_parser(
        "keys",
        help="generate the key that signs model manifests",
        description=(
            "Write a new ed25519 key pair for signing model manifests: the private key where "
            "registry.signing_key points (default data_dir/keys/manifest-signing.key, mode "
            "0600) and the public key beside it (.pub), which devices and gateways are "
            "configured with (model_public_key). Refuses to replace a key without --force: "
            "devices would refuse every model signed by the new one until they get its .pub."
        ),
    )
    keys.add_argument("keys_action", choices=["generate"], help="what to do")
    keys.add_argument("--force", action="store_true", help="replace an existing key")
    _add_common(keys, _STORE_FLAGS, suppress=True)
    keys.set_defaults(func=keys_generate)
    add_dataset_parser(actions, lambda p: _add_common(p, _STORE_FLAGS, suppress=True))
    for add_action in extra_actions:
        add_action(actions)


def _add_common(
    parser: argparse.ArgumentParser,
    flags: list[tuple[str, tuple[str, ...], type, str]],
    *,
    suppress: bool,
) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        default=default,
        help="TOML settings file (sections [http], [mqtt], [ingest], [worker])",
    )
    for flag, path, kind, text in flags:
        metavar = {"database_url": "URL", "data_dir": "DIR", "model": "FILE"}.get(
            path[-1], path[-1].upper()
        )
        parser.add_argument(flag, type=kind, default=default, metavar=metavar, help=text)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Settings overrides from the flags actually given."""
    overrides: dict[str, Any] = {}
    for flag, path, _kind, _text in _ALL_FLAGS:
        value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        if value is None:
            continue
        section = overrides
        for key in path[:-1]:
            section = section.setdefault(key, {})
        section[path[-1]] = value
    return overrides


def load(args: argparse.Namespace) -> CloudSettings:
    from edgecascade.cloud.settings import CloudSettings
    from edgecascade.shared.config import load_settings

    return load_settings(CloudSettings, getattr(args, "config", None), _overrides(args))


def migrate(args: argparse.Namespace) -> int:
    """``edgecascade cloud migrate``."""
    from edgecascade.cloud.db.migrate import upgrade

    settings = load(args)
    upgrade(settings.db_url)
    return 0


def _token_sessions(args: argparse.Namespace) -> Any:
    from edgecascade.cloud.db.engine import make_engine, make_session_factory
    from edgecascade.cloud.db.migrate import upgrade_engine

    engine = make_engine(load(args).db_url)
    upgrade_engine(engine)
    return make_session_factory(engine)


def keys_generate(args: argparse.Namespace) -> int:
    """``edgecascade cloud keys generate``: print the public key's path and PEM."""
    from edgecascade.cloud.errors import CloudError
    from edgecascade.shared.manifest import generate_keys

    settings = load(args)
    private = settings.signing_key_path
    if private.exists() and not args.force:
        raise CloudError(f"{private} exists; --force replaces it (devices then need the new .pub)")
    written, public = generate_keys(private.parent)
    if written != private:  # a configured name other than the default: keep the pair together
        written.replace(private)
        public = public.replace(private.with_suffix(".pub"))
    sys.stdout.write(f"{public}\n{public.read_text()}")
    return 0


def token_create(args: argparse.Namespace) -> int:
    """``edgecascade cloud token create``: the token on stdout, alone, for scripts."""
    from edgecascade.cloud.auth import create_token

    with _token_sessions(args)() as session:
        token = create_token(session, args.name, args.role)
    sys.stdout.write(token + "\n")
    return 0


def token_list(args: argparse.Namespace) -> int:
    from edgecascade.cloud.auth import list_tokens

    with _token_sessions(args)() as session:
        for row in list_tokens(session):
            state = "revoked" if row.revoked_at is not None else "active"
            sys.stdout.write(f"{row.name}\t{row.role}\t{state}\n")
    return 0


def token_revoke(args: argparse.Namespace) -> int:
    from edgecascade.cloud.auth import revoke_token

    with _token_sessions(args)() as session:
        revoke_token(session, args.name)
    return 0


def work(args: argparse.Namespace) -> int:
    """``edgecascade cloud worker``: run until SIGINT/SIGTERM, finishing the frames taken in."""
    from edgecascade.cloud.db.engine import make_engine
    from edgecascade.cloud.db.migrate import current_revision, head_revision
    from edgecascade.cloud.detection import CloudDetector
    from edgecascade.cloud.errors import StoreError
    from edgecascade.cloud.worker import ReinferenceWorker
    from edgecascade.shared.cli import stop_on_signals
    from edgecascade.shared.runtime.runtime import ModelRuntime
    from edgecascade.shared.systemd import Notifier

    settings = load(args)
    options = settings.worker
    runtime = ModelRuntime.load(options.model, num_threads=options.threads)
    detector = None
    if options.detection.model is not None:
        detector = CloudDetector.load(options.detection, num_threads=options.threads)
    engine = make_engine(settings.db_url)
    try:
        current, head = current_revision(engine), head_revision()
        if current != head:
            raise StoreError(
                f"database {engine.url.render_as_string(hide_password=True)} is at revision "
                f"{current}, not {head}: run `edgecascade cloud migrate` first"
            )
        worker = ReinferenceWorker(
            engine, runtime, mqtt=settings.mqtt, options=options, detector=detector
        )
        stop = stop_on_signals()
        notifier = Notifier()
        worker.start()
        notifier.ready(f"worker {options.worker_id}: {runtime.card.name} {runtime.card.version}")
        while not stop.wait(5.0):
            notifier.watchdog()
        notifier.stopping()
        worker.stop()
        logger.info("worker %s stopped: %s", options.worker_id, dict(worker.counts))
    finally:
        engine.dispose()
    return 0


def tune_garbage_collector() -> None:
    """Fewer collections for a process that holds many live objects (measured with bench cloud).

    The ingest keeps thousands of validated messages alive between commits; with CPython's
    default generation-0 threshold (700 allocations) the collector walks them again and again,
    which tripled the cost of decoding a gateway batch. Everything imported so far is frozen
    out of the collector's view; cycles are still collected, just in larger steps.
    """
    import gc

    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def serve(args: argparse.Namespace) -> int:
    """``edgecascade cloud``: run until SIGINT/SIGTERM (uvicorn handles both gracefully)."""
    import uvicorn

    from edgecascade.cloud.app import create_app

    settings = load(args)
    app = create_app(settings)
    tune_garbage_collector()
    config = uvicorn.Config(
        app, host=settings.http.host, port=settings.http.port, log_config=None, lifespan="on"
    )
    server = uvicorn.Server(config)
    app.state.shutting_down = lambda: server.should_exit  # ends event streams (dashboard)
    logger.info("cloud API on http://%s:%d", settings.http.host, settings.http.port)
    server.run()
    return 0 if server.started else 1
