"""Checks of what the agent sends up: its retained state, results, escalations, and how it treats
the gateway's acknowledgements."""

from __future__ import annotations

import time

from edgecascade.conformance.context import Run
from edgecascade.conformance.recorder import Recorder, Seen
from edgecascade.conformance.report import Check, expect, failed, passed
from edgecascade.conformance.schemas import schema_problem, validated
from edgecascade.conformance.site import PROBE
from edgecascade.shared.errors import ContractError
from edgecascade.shared.messages import (
    AckMessage,
    EscalationHeader,
    ResultBatchMessage,
    ResultMessage,
    StateMessage,
)
from edgecascade.shared.topics import Kind, topic

MIN_RESULTS = 3
CLOCK_SKEW_S = 60.0  # how far an agent's clock may be from the suite's
ACK_GRACE_S = 2.0  # a re-send this soon after the ack may have crossed it on the wire


def check_state(run: Run) -> list[Check]:
    """A retained, valid ``online`` state once connected (the birth message)."""

    def online() -> StateMessage | bool | None:
        for _seen, message, _error in run.states():
            if message is not None and message.status == "online":
                return message
        return False if run.agent is not None and not run.agent.running else None

    found = run.site_rec.wait(online, run.timeouts.connect)
    invalid = [error for _s, message, error in run.states() if message is None]
    invalid += [problem for seen, _m, _e in run.states() if (problem := schema_problem(seen))]
    if found is False and run.agent is not None:
        code = run.agent.proc.returncode
        return [failed("state.online", f"the agent exited with {code} before it came online")]
    if not isinstance(found, StateMessage):
        why = f"; invalid states: {invalid[0]}" if invalid else ""
        return [
            failed("state.online", f"no valid online state within {run.timeouts.connect:g} s{why}")
        ]
    checks = [
        expect(
            "state.online",
            not invalid,
            f"online, role {found.role}, model {found.model.name if found.model else '-'}, "
            f"session {found.session} ({validated()})"
            + (f"; but an invalid state was published: {invalid[0]}" if invalid else ""),
        )
    ]
    retained = retained_state(run, "online")
    checks.append(
        expect(
            "state.retained",
            retained,
            "a new subscriber gets the online state, retained"
            if retained
            else "a new subscriber got no retained online state (publish state with retain)",
        )
    )
    return checks


def retained_state(run: Run, status: str, timeout: float = 5.0) -> bool:
    """A fresh subscriber to the device's state receives ``status`` as a retained message."""
    ids = run.site.ids
    wire = topic(ids.site, ids.device, Kind.STATE, prefix=ids.prefix)
    fresh = Recorder(run.site.site_settings(PROBE), PROBE, wire)
    fresh.start()
    try:

        def got() -> bool | None:
            for seen in fresh.seen():
                try:
                    message = seen.decoded().message
                except ContractError:
                    return False
                if isinstance(message, StateMessage):
                    return seen.message.retain and message.status == status
            return None

        return bool(fresh.wait(got, timeout))
    finally:
        fresh.stop()


def results_at_cloud(run: Run) -> list[ResultMessage]:
    """The device's results as the gateway forwarded them to the cloud broker: in result
    batches, or alone (a batch of one goes as the device's own ``result``)."""
    out: list[ResultMessage] = []
    for seen in run.cloud_rec.seen(
        lambda s: s.is_(Kind.RESULT_BATCH) or s.is_(Kind.RESULT, run.device)
    ):
        try:
            message = seen.decoded().message
        except ContractError:
            continue
        if isinstance(message, ResultBatchMessage):
            out += [entry.result for entry in message.results if entry.device == run.device]
        elif isinstance(message, ResultMessage):
            out.append(message)
    return out


def check_results(run: Run) -> list[Check]:
    arrived = run.cloud_rec.wait(
        lambda: results_at_cloud(run) if len(results_at_cloud(run)) >= MIN_RESULTS else None,
        run.timeouts.event,
    )
    published = run.site_rec.seen(lambda s: s.is_(Kind.RESULT, run.device))
    invalid = []
    for seen in published:
        try:
            seen.decoded()
        except ContractError as exc:
            invalid.append(str(exc))
            continue
        problem = schema_problem(seen)
        if problem is not None:
            invalid.append(problem)
    if not published:
        schema = failed("results.schema", "the agent published no result")
    else:
        schema = expect(
            "results.schema",
            not invalid,
            f"{len(published)} result(s) published, every one valid ({validated()})"
            if not invalid
            else f"{len(invalid)} of {len(published)} invalid: {invalid[0]}",
        )
    checks = [schema]
    if arrived is None:
        got = len(results_at_cloud(run))
        batches = run.cloud_rec.seen(
            lambda s: s.is_(Kind.RESULT_BATCH) or s.is_(Kind.RESULT, run.device)
        )
        errors = []
        for seen in batches:
            try:
                seen.decoded()
            except ContractError as exc:
                errors.append(str(exc))
        why = f" ({len(batches)} message(s), {len(errors)} invalid{': ' if errors else ''}"
        why += f"{errors[0] if errors else ''})"
        checks.append(
            failed(
                "results.cloud",
                f"{got} result(s) reached the cloud within "
                f"{run.timeouts.event:g} s, expected {MIN_RESULTS}{why}",
            )
        )
        return checks
    checks.append(
        passed("results.cloud", f"{len(arrived)} result(s) reached the cloud through the gateway")
    )
    checks.append(_unique_ids(published, arrived))
    checks.append(_timestamps(run, published))
    return checks


def _unique_ids(published: list[Seen], arrived: list[ResultMessage]) -> Check:
    """Every result has its own id: a re-sent one carries the same bytes; the cloud got each
    once (the gateway de-duplicates by id)."""
    first: dict[str, bytes] = {}
    clashes = []
    for seen in published:
        try:
            msg_id = seen.decoded().message.msg_id
        except ContractError:
            continue
        payload = seen.message.payload
        if first.setdefault(msg_id, payload) != payload:
            clashes.append(msg_id)
    ids = [r.msg_id for r in arrived]
    twice = len(ids) - len(set(ids))
    if clashes:
        return failed("results.ids", f"{len(clashes)} id(s) reused for other content: {clashes[0]}")
    return expect(
        "results.ids",
        twice == 0,
        f"{len(first)} distinct ids; {len(published) - len(first)} identical re-send(s)"
        if twice == 0
        else f"{twice} result(s) reached the cloud twice",
    )


def _timestamps(run: Run, published: list[Seen]) -> Check:
    """``ts`` near the arrival on the suite's clock; captured before it was sent."""
    bad = []
    for seen in published:
        try:
            result = seen.decoded().message
        except ContractError:
            continue
        assert isinstance(result, ResultMessage)
        if abs(result.ts - seen.at) > CLOCK_SKEW_S:
            bad.append(f"{result.msg_id}: ts {result.ts:.3f} vs arrival {seen.at:.3f}")
        elif not result.ts - CLOCK_SKEW_S <= result.captured_at <= result.ts + 1.0:
            bad.append(f"{result.msg_id}: captured_at {result.captured_at:.3f}, ts {result.ts:.3f}")
    return expect(
        "results.timestamps",
        not bad,
        f"ts within {CLOCK_SKEW_S:g} s of arrival, captured_at before ts"
        if not bad
        else f"{len(bad)} result(s): {bad[0]}",
    )


def escalations_at_cloud(run: Run) -> list[tuple[EscalationHeader, bytes]]:
    out = []
    for seen in run.cloud_rec.seen(lambda s: s.is_(Kind.ESCALATION, run.device)):
        try:
            decoded = seen.decoded()
        except ContractError:
            continue
        if isinstance(decoded.message, EscalationHeader):
            out.append((decoded.message, decoded.body))
    return out


def check_escalations(run: Run) -> list[Check]:
    found = run.cloud_rec.wait(lambda: escalations_at_cloud(run) or None, run.timeouts.event)
    if found is None:
        invalid = []
        for seen in run.site_rec.seen(lambda s: s.is_(Kind.ESCALATION, run.device)):
            try:
                seen.decoded()
            except ContractError as exc:
                invalid.append(str(exc))
        why = f"; invalid ones on the site broker: {invalid[0]}" if invalid else ""
        return [
            failed(
                "escalations.cloud", f"none reached the cloud within {run.timeouts.event:g} s{why}"
            )
        ]
    header, body = found[0]
    problem = image_problem(header, body)
    result = run.site_rec.wait(lambda: True if header.result_id in _result_ids(run) else None, 5.0)
    if problem is None and not result:
        problem = f"its result_id {header.result_id} names no result the agent published"
    return [
        expect(
            "escalations.cloud",
            problem is None,
            f"{len(found)} escalation(s); {header.content_type} {header.width}x{header.height} "
            f"decodes, for result {header.result_id}"
            if problem is None
            else problem,
        )
    ]


def _result_ids(run: Run) -> set[str]:
    ids = set()
    for seen in run.site_rec.seen(lambda s: s.is_(Kind.RESULT, run.device)):
        try:
            ids.add(seen.decoded().message.msg_id)
        except ContractError:
            continue
    return ids


def image_problem(header: EscalationHeader, body: bytes) -> str | None:
    """Why the frame's bytes do not decode to the image its header describes (None: they do)."""
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        return f"the {header.content_type} body ({len(body)} bytes) does not decode"
    height, width = image.shape[:2]
    if (width, height) != (header.width, header.height):
        return f"image is {width}x{height}, header says {header.width}x{header.height}"
    return None


def check_acks(run: Run) -> list[Check]:
    """The gateway acknowledges what it committed (a self-check of the site); the agent does not
    publish an acknowledged message again (after a short grace). Watched from the first ack for
    the agent's re-send time (``EC_CONFORMANCE_CONFIRM_S``) and the grace, at least: an agent
    that ignores acks has re-sent by then."""
    first = run.site_rec.wait(lambda: min(_acked(run).values(), default=None), run.timeouts.event)
    if first is None:
        return [failed("acks.gateway", "the gateway acknowledged none of the agent's messages")]
    window = run.confirm_s + ACK_GRACE_S + 1.0
    late = run.site_rec.wait(lambda: _resent_after_ack(run) or None, first + window - time.time())
    acked = _acked(run)
    span = time.time() - first
    return [
        passed("acks.gateway", f"{len(acked)} message id(s) acknowledged by the gateway"),
        expect(
            "acks.honoured",
            not late,
            f"no acknowledged message sent again within {span:.0f} s of the first ack"
            if not late
            else f"{len(late)} acknowledged message(s) sent again more than {ACK_GRACE_S:g} s "
            f"after their ack, e.g. {late[0]}",
        ),
    ]


def _acked(run: Run) -> dict[str, float]:
    """When the gateway first acknowledged each of the agent's message ids (site broker)."""
    acked: dict[str, float] = {}
    for seen in run.site_rec.seen(lambda s: s.is_(Kind.ACK, run.device)):
        try:
            ack = seen.decoded().message
        except ContractError:
            continue
        if isinstance(ack, AckMessage):
            for msg_id in ack.msg_ids:
                acked.setdefault(msg_id, seen.at)
    return acked


def _resent_after_ack(run: Run) -> list[str]:
    acked = _acked(run)
    return [
        msg_id
        for msg_id, times in _sent_by_agent(run).items()
        if msg_id in acked and any(t > acked[msg_id] + ACK_GRACE_S for t in times)
    ]


def _sent_by_agent(run: Run) -> dict[str, list[float]]:
    """When the agent published each result and escalation id on the site broker."""
    sent: dict[str, list[float]] = {}
    kinds = (Kind.RESULT, Kind.ESCALATION)
    for seen in run.site_rec.seen(lambda s: any(s.is_(k, run.device) for k in kinds)):
        try:
            msg_id = seen.decoded().message.msg_id
        except ContractError:
            continue
        sent.setdefault(msg_id, []).append(seen.at)
    return sent
