"""Model offers: a validly signed one is fetched (``model/request`` -> ``model/chunk`` through the
gateway's cache) and applied; a tampered signature, an expired offer and a replayed older sequence
are refused (a ``failed`` ack with the reason, or at least never installed).

Order matters and is part of the check: the tampered and the expired offer name the model the
valid offer installs later (so a device that took them would have installed it); the replay comes
after the valid offer, with a lower sequence, and names the model the device started with.
"""

from __future__ import annotations

import time

from edgecascade.conformance.cloud import manifest_of
from edgecascade.conformance.context import Run
from edgecascade.conformance.report import Check, expect, failed, passed
from edgecascade.shared.errors import ContractError
from edgecascade.shared.manifest import sign_offer
from edgecascade.shared.model_messages import ModelAckMessage, ModelManifest
from edgecascade.shared.topics import Kind, ModelSub

APPLIED = frozenset({"applied", "committed"})
OFFER_TTL_S = 600.0


def acks(run: Run, rollout_id: str) -> list[ModelAckMessage]:
    out = []
    for seen in run.cloud_rec.seen(lambda s: s.is_(Kind.MODEL, run.device, ModelSub.ACK)):
        try:
            message = seen.decoded().message
        except ContractError:
            continue
        if isinstance(message, ModelAckMessage) and message.rollout_id == rollout_id:
            out.append(message)
    return out


def running_sha(run: Run) -> str | None:
    """The model sha256 of the device's latest online state."""
    online = [m for _s, m, _e in run.states() if m is not None and m.status == "online"]
    return online[-1].model.sha256 if online and online[-1].model else None


def check_offers(run: Run) -> list[Check]:
    key = run.site.signing_key
    fresh, old = manifest_of(run.offer_model), manifest_of(run.start_model)
    run.distributor.add(run.offer_model, fresh)
    run.distributor.add(run.start_model, old)
    base, now = int(time.time() * 1_000_000), time.time()
    good = sign_offer(fresh, key, base + 1, OFFER_TTL_S, now=now)
    flipped = "0" if good.signature[-1] != "0" else "1"
    tampered = good.model_copy(update={"signature": good.signature[:-1] + flipped})
    checks = [
        _refused(run, "offers.tampered", tampered),
        _refused(run, "offers.expired", sign_offer(fresh, key, base + 2, 60, now=now - 3600)),
    ]
    checks += _applied(run, sign_offer(fresh, key, base + 10, OFFER_TTL_S, now=now))
    checks.append(
        _refused(run, "offers.replayed", sign_offer(old, key, base + 5, OFFER_TTL_S, now=now))
    )
    return checks


def _applied(run: Run, manifest: ModelManifest) -> list[Check]:
    rollout = "conformance-valid"
    sent_at = time.time()
    run.cloud_rec.publish(run.cloud.offer(rollout, manifest))
    done = run.cloud_rec.wait(
        lambda: True if any(a.status in APPLIED | {"failed"} for a in acks(run, rollout)) else None,
        run.timeouts.offer,
    )
    stages = [a.status for a in acks(run, rollout)]
    requests = run.site_rec.seen(lambda s: s.is_(Kind.MODEL, run.device, ModelSub.REQUEST), sent_at)
    if not done:
        return [
            failed(
                "offers.valid",
                f"not applied within {run.timeouts.offer:g} s; acks: {stages or 'none'}",
            )
        ]
    failures = [a.detail for a in acks(run, rollout) if a.status == "failed"]
    checks = [
        expect(
            "offers.valid",
            not failures and bool(requests),
            f"acks {' -> '.join(stages)} after {len(requests)} chunk request(s)"
            if not failures and requests
            else f"acks {stages}: {failures[0] if failures else 'no chunk requested'}",
        )
    ]
    reported = run.site_rec.wait(
        lambda: True if running_sha(run) == manifest.sha256 else None, run.timeouts.event
    )
    checks.append(
        expect(
            "offers.state",
            bool(reported),
            f"the online state names the new model {manifest.sha256[:12]}"
            if reported
            else f"the online state still names {str(running_sha(run))[:12]}",
        )
    )
    return checks


def _refused(run: Run, name: str, manifest: ModelManifest) -> Check:
    rollout = f"conformance-{name.split('.')[-1]}"
    before = running_sha(run)
    run.cloud_rec.publish(run.cloud.offer(rollout, manifest))
    settled = run.cloud_rec.wait(
        lambda: True if any(a.status in APPLIED | {"failed"} for a in acks(run, rollout)) else None,
        run.timeouts.refusal,
    )
    answers = acks(run, rollout)
    installed = [a.status for a in answers if a.status in APPLIED]
    if installed:
        return failed(name, f"installed: acks {[a.status for a in answers]}")
    if settled:
        reason = next(a.detail for a in answers if a.status == "failed")
        return expect(
            name, bool(reason), f"refused: {reason}" if reason else "failed ack without a reason"
        )
    if running_sha(run) == manifest.sha256 and before != manifest.sha256:
        return failed(name, "no ack, but the state now names the offered model")
    return passed(name, f"no ack within {run.timeouts.refusal:g} s and not installed")
