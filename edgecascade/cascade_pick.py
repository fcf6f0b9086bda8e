"""``edgecascade cascade pick``: choose an escalation policy from measured data.

Reads the JSON of ``edgecascade bench cascade --output`` and picks, among the cascade policies
measured there (never the edge-only or cloud-only references), either

- ``--accuracy-within P``: the policy that uplinks the fewest bytes while its accuracy is at most
  P percentage points below cloud-only's, or
- ``--bytes-budget F``: the most accurate policy that uplinks at most F times cloud-only's bytes
  (fewer bytes breaks a tie).

It prints the choice with its figures and the ``[escalation]`` section to deploy it; when no
policy meets the target the error names the target and the closest policy measured.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edgecascade.shared.cli import SubParsers
from edgecascade.shared.errors import EdgeCascadeError

REFERENCES = frozenset({"edge-only", "cloud-only"})


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "cascade",
        help="pick an escalation policy from `bench cascade` figures",
        description="Work with the figures of `edgecascade bench cascade`.",
    )
    commands = parser.add_subparsers(dest="cascade_command", required=True, metavar="COMMAND")
    pick = commands.add_parser(
        "pick",
        help="the cheapest policy meeting an accuracy target, or the best within a bytes budget",
        description=(
            "Pick the escalation policy that meets a target, from the JSON written by "
            "`edgecascade bench cascade --output FILE`."
        ),
    )
    pick.add_argument(
        "--from",
        dest="source",
        type=Path,
        required=True,
        metavar="FILE",
        help="JSON written by `edgecascade bench cascade --output`",
    )
    pick.add_argument("--pair", help="model pair in the file (default: the first measured)")
    target = pick.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--accuracy-within",
        type=float,
        metavar="POINTS",
        help="accuracy at most POINTS percentage points below cloud-only; fewest bytes wins",
    )
    target.add_argument(
        "--bytes-budget",
        type=float,
        metavar="FRACTION",
        help="uplink at most FRACTION of cloud-only's bytes (e.g. 0.2); best accuracy wins",
    )
    pick.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    policies = load_policies(args.source, args.pair)
    if args.accuracy_within is not None:
        chosen = pick_by_accuracy(policies, args.accuracy_within)
    else:
        chosen = pick_by_bytes(policies, args.bytes_budget)
    sys.stdout.write(describe(chosen) + "\n")
    return 0


def load_policies(path: Path, pair: str | None) -> list[dict[str, Any]]:
    """The measured policies of one pair, each with its ratios to cloud-only."""
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise EdgeCascadeError(f"--from {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise EdgeCascadeError(f"--from {path}: not readable JSON ({exc})") from exc
    pairs = report.get("pairs") if isinstance(report, dict) else None
    if not isinstance(pairs, dict) or not pairs:
        raise EdgeCascadeError(
            f"--from {path}: no measured pairs; is it the output of `edgecascade bench cascade`?"
        )
    name = pair or next(iter(pairs))
    if name not in pairs:
        raise EdgeCascadeError(f"--pair {name!r} is not in {path}; it has {sorted(pairs)}")
    policies: list[dict[str, Any]] = pairs[name]["policies"]
    return policies


def _candidates(policies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        p
        for p in policies
        if p["family"] not in REFERENCES
        and p.get("bytes_ratio") is not None
        and p.get("accuracy_vs_cloud_points") is not None
    ]


def pick_by_accuracy(policies: list[dict[str, Any]], within_points: float) -> dict[str, Any]:
    """Fewest bytes among the policies at most ``within_points`` below cloud-only's accuracy."""
    if within_points < 0:
        raise EdgeCascadeError(f"--accuracy-within must be >= 0 points, got {within_points}")
    candidates = _candidates(policies)
    meeting = [p for p in candidates if p["accuracy_vs_cloud_points"] >= -within_points]
    if not meeting:
        closest = max(candidates, key=lambda p: p["accuracy_vs_cloud_points"], default=None)
        raise EdgeCascadeError(
            f"no policy is within {within_points:g} points of cloud-only accuracy"
            + _closest(closest)
        )
    return min(meeting, key=lambda p: (p["bytes_ratio"], -p["accuracy_vs_cloud_points"]))


def pick_by_bytes(policies: list[dict[str, Any]], budget: float) -> dict[str, Any]:
    """Best accuracy among the policies uplinking at most ``budget`` of cloud-only's bytes."""
    if not 0 < budget <= 1:
        raise EdgeCascadeError(f"--bytes-budget must be in (0, 1], got {budget}")
    candidates = _candidates(policies)
    meeting = [p for p in candidates if p["bytes_ratio"] <= budget]
    if not meeting:
        closest = min(candidates, key=lambda p: p["bytes_ratio"], default=None)
        raise EdgeCascadeError(
            f"no policy uplinks at most {budget:g} of cloud-only's bytes" + _closest(closest)
        )
    return max(meeting, key=lambda p: (p["accuracy_vs_cloud_points"], -p["bytes_ratio"]))


def _closest(policy: dict[str, Any] | None) -> str:
    if policy is None:
        return " (the file has no cascade policies)"
    return f"; closest measured: {policy['policy']} ({_figures(policy)})"


def _figures(policy: dict[str, Any]) -> str:
    return (
        f"accuracy {100 * policy['accuracy']:.2f} % ({policy['accuracy_vs_cloud_points']:+.2f} "
        f"points vs cloud-only), {policy['bytes_ratio']:.3f} of cloud-only bytes, "
        f"{100 * policy['escalated_fraction']:.1f} % escalated"
    )


def describe(policy: dict[str, Any]) -> str:
    """The choice, its figures and the agent configuration that runs it."""
    lines = [f"picked {policy['policy']}: {_figures(policy)}"]
    if policy.get("calibrated"):
        lines.append(
            "  (thresholds on calibrated probabilities: ship the fitted temperature "
            f"{policy.get('temperature', '?')} with the model)"
        )
    lines.append("[escalation]")
    for key, value in policy["escalation"].items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines)
