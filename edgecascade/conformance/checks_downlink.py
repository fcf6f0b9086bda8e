"""Checks of what the agent gets from the cloud through the gateway (verdicts, commands), of its
last will, and of the site itself (dead letters, the websockets listener)."""

from __future__ import annotations

import threading
import time

from edgecascade.conformance.checks_uplink import escalations_at_cloud, retained_state
from edgecascade.conformance.context import Run
from edgecascade.conformance.report import Check, expect, failed, passed, skipped
from edgecascade.conformance.site import PROBE
from edgecascade.shared.errors import ContractError
from edgecascade.shared.ids import new_message_id
from edgecascade.shared.messages import (
    DeadLetterMessage,
    EscalationHeader,
    ModelRef,
    Prediction,
    ReplyMessage,
    VerdictMessage,
)
from edgecascade.shared.mqtt import MqttLink, Outgoing
from edgecascade.shared.topics import Kind, topic

VERDICT_COUNTER = "verdicts.received"  # the Python agent's telemetry counter of applied verdicts
CLOUD_MODEL = ModelRef(name="conformance-cloud", version="1")


def verdict_for(header: EscalationHeader) -> VerdictMessage:
    """What a worker answers: here the edge's own answer, so the verdict agrees."""
    return VerdictMessage(
        escalation_id=header.msg_id,
        result_id=header.result_id,
        model=CLOUD_MODEL,
        task=header.task,
        top=header.top[:1],
        detections=header.detections,
        agrees=True,
    )


def unknown_verdict() -> VerdictMessage:
    return VerdictMessage(
        escalation_id=new_message_id(),
        result_id=new_message_id(),
        model=CLOUD_MODEL,
        top=[Prediction(index=0, label="unknown", score=0.9)],
        agrees=False,
    )


def _counter(run: Run, name: str, since: float = 0.0) -> int | None:
    """The highest value of a telemetry counter seen since ``since`` (None: never reported)."""
    values = [t.counters[name] for t in run.telemetry(since) if name in t.counters]
    return max(values) if values else None


def check_verdicts(run: Run) -> list[Check]:
    escalations = escalations_at_cloud(run)
    if not escalations:
        return [skipped("verdicts.applied", "no escalation reached the cloud to answer")]
    before = _counter(run, VERDICT_COUNTER) or 0
    sent_at = time.time()
    run.cloud_rec.publish(run.cloud.wire(Kind.VERDICT, verdict_for(escalations[0][0])))
    grown = run.cloud_rec.wait(
        lambda: True if (_counter(run, VERDICT_COUNTER, sent_at) or 0) > before else None,
        run.timeouts.event,
    )
    if grown:
        applied = passed(
            "verdicts.applied", f"telemetry counter {VERDICT_COUNTER} rose above {before}"
        )
    elif not run.telemetry(sent_at):
        applied = skipped("verdicts.applied", "the agent sent no telemetry after the verdict")
    elif any(k.startswith("verdicts.") for t in run.telemetry() for k in t.counters):
        applied = failed("verdicts.applied", f"telemetry counter {VERDICT_COUNTER} did not rise")
    else:
        applied = skipped(
            "verdicts.applied",
            f"the agent's telemetry has no verdicts.* counters (the contract names none; "
            f"the Python agent's {VERDICT_COUNTER} is what this checks)",
        )
    return [applied, _unknown_verdict(run)]


def _unknown_verdict(run: Run) -> Check:
    """A verdict for an escalation the agent never sent: it keeps working (answers a command
    sent after it, sends results after it, stays online)."""
    sent_at = time.time()
    run.cloud_rec.publish(run.cloud.wire(Kind.VERDICT, unknown_verdict()))
    reply = _command(run, "diagnostics", {"lines": 1})
    later = run.site_rec.wait(
        lambda: (
            True if run.site_rec.seen(lambda s: s.is_(Kind.RESULT, run.device), sent_at) else None
        ),
        run.timeouts.event,
    )
    alive = run.agent is None or run.agent.running
    offline = [m for _s, m, _e in run.states(sent_at) if m is not None and m.status == "offline"]
    problems = [
        text
        for bad, text in (
            (not alive, "the agent process exited"),
            (bool(offline), "the agent went offline"),
            (reply is None, "no reply to a command sent after it"),
            (not later, "no result after it"),
        )
        if bad
    ]
    unknown = _counter(run, "verdicts.unknown")
    note = f" (telemetry verdicts.unknown = {unknown})" if unknown is not None else ""
    return expect(
        "verdicts.unknown",
        not problems,
        f"still running, replying and sending results{note}"
        if not problems
        else "; ".join(problems),
    )


def _command(run: Run, name: str, args: dict[str, object] | None = None) -> ReplyMessage | None:
    wire, correlation = run.cloud.command(name, args)
    run.cloud_rec.publish(wire)

    def reply() -> ReplyMessage | None:
        for seen in run.cloud_rec.seen(lambda s: s.is_(Kind.REPLY, run.device, name)):
            try:
                message = seen.decoded().message
            except ContractError:
                continue
            if isinstance(message, ReplyMessage) and message.correlation == correlation:
                return message
        return None

    return run.cloud_rec.wait(reply, run.timeouts.event)


def check_commands(run: Run) -> list[Check]:
    checks = []
    ok = _command(run, "diagnostics", {"lines": 5})
    checks.append(
        failed(
            "commands.diagnostics",
            f"no reply/diagnostics with the correlation within {run.timeouts.event:g} s",
        )
        if ok is None
        else expect(
            "commands.diagnostics",
            ok.status == "ok",
            f"reply status {ok.status}" + (f", error {ok.error!r}" if ok.error else ""),
        )
    )
    bad = _command(run, "conformance-no-such-command")
    checks.append(
        failed("commands.unknown", "no reply to an unknown command (expected status error)")
        if bad is None
        else expect(
            "commands.unknown",
            bad.status == "error" and bool(bad.error),
            f"reply status {bad.status}, error {bad.error!r}",
        )
    )
    return checks


def check_lwt(run: Run) -> list[Check]:
    if run.agent is None:
        return [skipped("lwt.offline", "--no-launch: the suite cannot kill the agent")]
    if not run.agent.running:
        code = run.agent.proc.returncode
        return [failed("lwt.offline", f"the agent exited with {code} before the suite killed it")]
    killed_at = time.time()
    run.agent.kill()

    def offline() -> bool | None:
        states = run.states(killed_at)
        return (
            True if any(m is not None and m.status == "offline" for _s, m, _e in states) else None
        )

    if not run.site_rec.wait(offline, run.timeouts.lwt):
        return [
            failed(
                "lwt.offline",
                f"no offline state within {run.timeouts.lwt:g} s of SIGKILL (set a retained "
                "last will with status offline)",
            )
        ]
    retained = retained_state(run, "offline")
    return [
        expect(
            "lwt.offline",
            retained,
            "after SIGKILL the broker published the offline state, retained"
            if retained
            else "the offline state after SIGKILL was not retained",
        )
    ]


def check_dead_letter(run: Run) -> list[Check]:
    """A site self-check: an invalid result published with the device's credentials is
    dead-lettered by the gateway, with the reason."""
    ids = run.site.ids
    wire = topic(ids.site, ids.device, Kind.RESULT, prefix=ids.prefix)
    link = MqttLink(
        run.site.site_settings(run.site.device_user), "conformance-bad", persistent=False
    )
    link.connect()
    try:
        sent_at = time.time()
        link.confirm(link.publish(Outgoing(wire, b'{"schema_version": 1, "frame_id": 7}')), 10)
    finally:
        link.stop()

    def letter() -> DeadLetterMessage | None:
        for seen in run.cloud_rec.seen(lambda s: s.is_(Kind.DEAD_LETTER), sent_at):
            try:
                message = seen.decoded().message
            except ContractError:
                continue
            if isinstance(message, DeadLetterMessage) and message.topic == wire:
                return message
        return None

    found = run.cloud_rec.wait(letter, run.timeouts.event)
    if found is None:
        return [
            failed("site.dead_letter", f"no dead letter for {wire} within {run.timeouts.event:g} s")
        ]
    return [expect("site.dead_letter", bool(found.reason), f"dead-lettered: {found.reason}")]


def check_websockets(run: Run) -> list[Check]:
    """A site self-check: the websockets listener serves the same broker (the gateway's
    retained state arrives over it)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    ids = run.site.ids
    wire = topic(ids.site, ids.gateway, Kind.STATE, prefix=ids.prefix)
    got = threading.Event()
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=PROBE, transport="websockets", protocol=paho.MQTTv5
    )
    client.username_pw_set(PROBE, run.site.passwords[PROBE])
    client.on_connect = lambda c, *_: c.subscribe(wire, qos=1)
    client.on_message = lambda *_: got.set()
    try:
        client.connect(run.site.host, run.site.ws_port)
        client.loop_start()
        ok = got.wait(10)
    except OSError as exc:
        return [failed("site.websockets", f"{run.site.ws_url}: {exc}")]
    finally:
        client.loop_stop()
        client.disconnect()
    return [
        expect(
            "site.websockets",
            ok,
            f"{run.site.ws_url} serves the site broker"
            if ok
            else f"nothing received over {run.site.ws_url}",
        )
    ]
