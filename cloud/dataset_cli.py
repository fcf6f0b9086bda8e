"""``edgecascade cloud dataset export``: the verdicts as a dataset folder any trainer can read.

Light to import, like :mod:`cloud.cli` (which registers it): SQLAlchemy and the export code are
imported inside the handler. Progress goes to stderr; stdout is the summary table alone.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from edgecascade.shared.cli import SubParsers


def timestamp(text: str) -> float:
    """Epoch seconds, or an ISO 8601 date or time (UTC unless it names its offset)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither epoch seconds nor an ISO 8601 time (2026-12-01T08:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def add_dataset_parser(
    actions: SubParsers[argparse.ArgumentParser],
    add_store_flags: Callable[[argparse.ArgumentParser], None],
) -> None:
    """``cloud dataset export``; ``add_store_flags`` adds --config, --database-url, --data-dir."""
    parser = actions.add_parser(
        "dataset",
        help="export the cloud's verdicts as a training dataset",
        description="Verdict datasets: stored frames with the cloud's (or a person's) label.",
    )
    dataset_actions = parser.add_subparsers(dest="dataset_action", required=True, metavar="ACTION")
    export = dataset_actions.add_parser(
        "export",
        help="write an ImageFolder and a JSONL manifest",
        description=(
            "Write every escalated frame that has a cloud verdict (audit samples included) in "
            "the filters as a dataset: images/<label>/<id>.<ext>, manifest.jsonl and "
            "dataset.json. A person's label wins over the cloud's. Frames missing from the blob "
            "store or not decodable are skipped and listed. Fails on an unknown site or an "
            "empty selection."
        ),
    )
    export.add_argument("--out", type=Path, required=True, metavar="DIR", help="a new folder")
    export.add_argument("--site", metavar="SITE", help="only this site (default: every site)")
    export.add_argument(
        "--since", type=timestamp, metavar="TIME", help="captured at or after (ISO or epoch s)"
    )
    export.add_argument(
        "--until", type=timestamp, metavar="TIME", help="captured before (ISO or epoch s)"
    )
    add_store_flags(export)
    export.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from edgecascade.cloud.cli import load
    from edgecascade.cloud.dataset import DatasetFilters
    from edgecascade.cloud.export import export_dataset
    from edgecascade.cloud.services import open_services

    filters = DatasetFilters(site=args.site, since=args.since, until=args.until)
    services = open_services(load(args), start_ingest=False)
    try:
        with services.sessions() as session:
            summary = export_dataset(session, services.blobs, filters, args.out, _progress)
    finally:
        services.close()
    manifest = summary.manifest
    lines = [
        f"dataset {manifest.snapshot_id} in {summary.out}",
        f"{'samples':<16}{manifest.count:>8}",
        f"{'holdout':<16}{summary.holdout:>8}",
        f"{'audit':<16}{summary.audit:>8}",
        *(f"{'by ' + source:<16}{n:>8}" for source, n in summary.by_source.items()),
        *(f"{'  ' + label:<16}{n:>8}" for label, n in summary.by_label.items()),
        f"{'skipped':<16}{len(summary.skipped):>8}",
        *(f"  {skip.id}: {skip.reason}" for skip in summary.skipped),
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _progress(done: int, total: int) -> None:
    if done == total or done % 500 == 0:
        sys.stderr.write(f"export: {done}/{total} frames read\n")
