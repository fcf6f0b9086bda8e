"""Remote configuration on the agent: a document checked against the settings schema, applied
while the agent runs, refused with the reason, kept across a restart (real broker)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edgecascade.brokers import MosquittoBroker
from edgecascade.edge_agent.live import LIVE_FILE, build
from edgecascade.edge_agent.settings import AgentSettings, EscalationSettings, SourceSettings
from edgecascade.shared.codec import decode, encode
from edgecascade.shared.diagnostics import REDACTED, effective_settings
from edgecascade.shared.errors import ConfigError
from edgecascade.shared.messages import (
    CommandMessage,
    EscalationHeader,
    Message,
    ReplyMessage,
    ResultMessage,
    StateMessage,
)
from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.topics import Kind, Topic, topic
from tests.utils.agents import RunningAgent, agent_settings
from tests.utils.factories import make_result
from tests.utils.mqtt import Collector, publish_all, wait_until
from tests.utils.paths import EDGE_MODEL, sample_subset


def base_settings(tmp_path: Path) -> AgentSettings:
    return AgentSettings(model=EDGE_MODEL, data_dir=tmp_path)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"escalation": {"threshold": 1.5}}, "escalation.threshold: Input should be less"),
        ({"escalation": {"threshold": "high"}}, "escalation.threshold: Input should be a valid"),
        ({"escalation": {"colour": 1}}, "escalation.colour is not a setting of the agent"),
        ({"model": "other.tflite"}, "model cannot change while the agent runs"),
        ({"source": {"kind": "camera"}}, "source.kind cannot change while the agent runs"),
        ({"source": 5}, "source is a section: expected a table of keys, got 5"),
        ({"colour": "red"}, "colour is not a setting of the agent"),
        (
            {"escalation": {"detection": {"score_low": 0.9, "score_high": 0.5}}},
            "score_low 0.9 is above score_high 0.5",
        ),
        ({"zones": [{"name": "a", "points": [[0, 0], [2, 0], [0, 1]]}]}, "outside 0..1"),
    ],
)
def test_a_bad_document_is_refused_with_the_key_and_the_reason(
    tmp_path: Path, document: dict[str, object], reason: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build(base_settings(tmp_path), 1, document)
    assert reason in str(caught.value)


def test_a_document_is_laid_over_the_start_up_settings_not_the_previous_one(
    tmp_path: Path,
) -> None:
    base = base_settings(tmp_path)
    first = build(base, 1, {"escalation": {"threshold": 0.3}, "source": {"fps": 2}})
    assert first.settings.escalation.threshold == 0.3 and first.settings.source.fps == 2
    assert first.settings.escalation.margin == base.escalation.margin
    second = build(base, 2, {"gating": {"enabled": True}})
    assert second.settings.escalation.threshold == base.escalation.threshold
    assert second.settings.gating.enabled and second.settings.source.fps == base.source.fps


def decoded(collector: Collector, kind: type[Message]) -> list[Message]:
    out = []
    for m in collector.messages:
        message = decode(Topic.parse(m.topic), m.payload).message
        if isinstance(message, kind):
            out.append(message)
    return out


def send(broker: MosquittoBroker, name: str, args: dict[str, object]) -> str:
    """Publish ``cmd/<name>`` to s1/cam1; the correlation id its reply carries."""
    command = CommandMessage(correlation=make_result().msg_id, args=args)
    wire = topic("s1", "cam1", Kind.CMD, name)
    publish_all(broker.settings, [Outgoing(wire, encode(command))], client_id=f"cmd-{name}")
    return command.correlation


def reply_to(collector: Collector, correlation: str) -> ReplyMessage | None:
    for reply in decoded(collector, ReplyMessage):
        if isinstance(reply, ReplyMessage) and reply.correlation == correlation:
            return reply
    return None


def last_state(collector: Collector) -> StateMessage:
    states = [s for s in decoded(collector, StateMessage) if isinstance(s, StateMessage)]
    return states[-1]


def policies(collector: Collector) -> set[str | None]:
    return {r.policy for r in decoded(collector, ResultMessage) if isinstance(r, ResultMessage)}


def escalations(collector: Collector) -> int:
    return sum(
        isinstance(e, EscalationHeader) and not e.audit
        for e in decoded(collector, EscalationHeader)
    )


def test_the_agent_applies_refuses_and_keeps_a_config_across_a_restart(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    sample_subset(tmp_path / "frames", per_class=1)
    settings = agent_settings(
        broker,
        tmp_path / "agent",
        SourceSettings(path=tmp_path / "frames", fps=50, loop=True),
        # Never unsure at threshold 0: no escalation until the config says otherwise.
        escalation=EscalationSettings(threshold=0.0, audit_fraction=0, cooldown_s=0),
    )
    with Collector(broker.settings, "ec/v1/#", client_id="watch") as collector:
        running = RunningAgent(settings)
        try:
            assert wait_until(lambda: bool(decoded(collector, StateMessage)))
            assert last_state(collector).config_version is None
            assert escalations(collector) == 0
            good = send(
                broker,
                "config",
                {
                    "version": 3,
                    "settings": {
                        "escalation": {"mode": "always", "budget_per_minute": 6000, "burst": 1000}
                    },
                },
            )
            assert wait_until(lambda: reply_to(collector, good) is not None)
            reply = reply_to(collector, good)
            assert reply is not None and reply.status == "ok", reply
            assert reply.data == {"version": 3, "changed": True}
            assert wait_until(lambda: last_state(collector).config_version == 3)
            assert wait_until(lambda: escalations(collector) >= 3)  # every frame is unsure now
            # Results judged by it say so (their provenance).
            assert wait_until(lambda: "config-3" in policies(collector))

            bad = send(
                broker, "config", {"version": 4, "settings": {"escalation": {"threshold": 1.5}}}
            )
            assert wait_until(lambda: reply_to(collector, bad) is not None)
            refused = reply_to(collector, bad)
            assert refused is not None and refused.status == "error"
            assert "escalation.threshold" in (refused.error or "")
            assert refused.data == {"version": 3}  # the previous config keeps running
            unknown = send(broker, "config", {"version": 5, "settings": {"model": "x.tflite"}})
            assert wait_until(lambda: reply_to(collector, unknown) is not None)
            refused = reply_to(collector, unknown)
            assert refused is not None and refused.status == "error"
            assert "model cannot change while the agent runs" in (refused.error or "")
            assert running.agent.settings.escalation.mode == "always"
        finally:
            running.close()
    saved = json.loads((tmp_path / "agent" / LIVE_FILE).read_text())
    assert saved["version"] == 3
    with Collector(broker.settings, "ec/v1/+/+/state", client_id="watch2") as collector:
        again = RunningAgent(settings)  # the same start-up settings: threshold 0
        try:
            assert again.agent.settings.escalation.mode == "always"
            assert wait_until(
                lambda: any(
                    isinstance(s, StateMessage) and s.status == "online" and s.config_version == 3
                    for s in decoded(collector, StateMessage)
                )
            )
        finally:
            again.close()


def test_diagnostics_answer_with_logs_settings_and_the_outbox_and_the_state_has_tags(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    sample_subset(tmp_path / "frames", per_class=1)
    settings = agent_settings(
        broker,
        tmp_path / "agent",
        SourceSettings(path=tmp_path / "frames", fps=20, loop=True),
        tags="zone:north, pilot",  # as the environment gives them
    )
    with Collector(broker.settings, "ec/v1/#", client_id="watch") as collector:
        running = RunningAgent(settings)
        try:
            assert wait_until(lambda: bool(decoded(collector, StateMessage)))
            assert last_state(collector).tags == ["zone:north", "pilot"]  # provisioned
            asked = send(broker, "diagnostics", {"lines": 5})
            assert wait_until(lambda: reply_to(collector, asked) is not None)
            reply = reply_to(collector, asked)
            assert reply is not None and reply.status == "ok"
            data: Any = reply.data
            assert 0 < len(data["logs"]) <= 5 and all(isinstance(s, str) for s in data["logs"])
            assert data["settings"]["device"] == "cam1"
            assert data["outbox"]["total"] >= 0
            too_many = send(broker, "diagnostics", {"lines": 10**6})
            assert wait_until(lambda: reply_to(collector, too_many) is not None)
            refused = reply_to(collector, too_many)
            assert refused is not None and refused.status == "error"
            assert refused.error == "lines must be an integer 0..2000, got 1000000"
        finally:
            running.close()


def test_secrets_are_redacted_from_the_effective_settings(tmp_path: Path) -> None:
    settings = AgentSettings(
        model=EDGE_MODEL,
        data_dir=tmp_path,
        mqtt={"username": "cam1", "password": "hunter2", "cert_file": "c.pem", "key_file": "k.pem"},
        source={"kind": "stream", "url": "rtsp://admin:hunter2@10.0.0.5/live"},
    )
    shown = effective_settings(settings)
    assert "hunter2" not in json.dumps(shown)
    assert shown["mqtt"]["password"] == REDACTED and shown["mqtt"]["key_file"] == REDACTED
    assert shown["mqtt"]["username"] == "cam1" and shown["mqtt"]["cert_file"] == "c.pem"
    assert shown["source"]["url"] == f"rtsp://{REDACTED}@10.0.0.5/live"
