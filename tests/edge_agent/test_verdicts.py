"""Cloud verdicts reach the device and are applied to its stored results."""

from __future__ import annotations

from pathlib import Path

from edgecascade.brokers import MosquittoBroker
from edgecascade.edge_agent.settings import EscalationSettings, SourceSettings
from edgecascade.shared.codec import decode, encode
from edgecascade.shared.messages import Prediction, ResultMessage, VerdictMessage
from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.topics import Kind, Topic, topic, topic_filter
from tests.utils.agents import RunningAgent, agent_settings
from tests.utils.mqtt import Collector, publish_all, wait_until
from tests.utils.paths import sample_subset


def verdict_for(result: ResultMessage, label: str) -> VerdictMessage:
    return VerdictMessage(
        escalation_id=result.msg_id,  # any id; the device correlates by result_id
        result_id=result.msg_id,
        model=result.model,
        top=[Prediction(index=0, label=label, score=0.99)],
        agrees=label == result.top[0].label,
    )


def test_verdicts_are_applied_counted_and_bad_ones_rejected(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    sample_subset(tmp_path / "frames", per_class=1)
    settings = agent_settings(
        broker,
        tmp_path / "agent",
        SourceSettings(path=tmp_path / "frames", fps=50, loop=True),
        escalation=EscalationSettings(threshold=0.0),
    )
    with Collector(broker.settings, topic_filter(Kind.RESULT)) as collector:
        running = RunningAgent(settings)
        agent = running.agent
        assert wait_until(lambda: len(collector.messages) >= 3)
        results = [decode(Topic.parse(m.topic), m.payload).message for m in collector.messages[:2]]
        assert all(isinstance(r, ResultMessage) for r in results)
        first, second = (r for r in results if isinstance(r, ResultMessage))
        # Provenance: each result names the policy that judged it and the model's sha256.
        assert first.policy is not None and first.policy.startswith("p-")
        assert first.policy == second.policy and len(first.model.sha256) == 64
        wire = topic("s1", "cam1", Kind.VERDICT)
        unknown = verdict_for(first, "bag").model_copy(
            update={"result_id": "0190a4c8-0000-7000-8000-000000000000"}
        )
        publish_all(
            broker.settings,
            [
                Outgoing(wire, encode(verdict_for(first, first.top[0].label))),  # agrees
                Outgoing(wire, encode(verdict_for(second, "not-" + second.top[0].label))),
                # The same verdict again, as after a reconnect: applied and counted once.
                Outgoing(wire, encode(verdict_for(second, "not-" + second.top[0].label))),
                Outgoing(wire, encode(unknown)),
                Outgoing(wire, b'{"schema_version": 1, "top": "nonsense"}'),
            ],
        )
        assert wait_until(
            lambda: (
                agent.verdicts.counts["verdicts.received"] == 2
                and agent.verdicts.counts["verdicts.unknown"] == 1
                and agent.stats.rejected == 1
            )
        )
        assert agent.verdicts.counts["verdicts.corrected"] == 1
        assert wait_until(lambda: agent.verdicts.counts["verdicts.duplicate"] == 1)
        assert agent.verdicts.cloud_label(first.msg_id) == first.top[0].label
        assert agent.verdicts.cloud_label(second.msg_id) == "not-" + second.top[0].label
        frames_before = agent.stats.frames
        assert wait_until(lambda: agent.stats.frames > frames_before)  # still running
        running.close()
    assert agent.stats.verdicts == 2 and agent.stats.corrected == 1


def test_verdict_book_keeps_only_the_newest(tmp_path: Path) -> None:
    from edgecascade.edge_agent.verdicts import VerdictBook
    from tests.utils.factories import make_result

    book = VerdictBook(capacity=20)
    results = [make_result() for _ in range(60)]
    for result in results:
        book.remember(result)
    assert not book.apply(verdict_for(results[0], "bag"))  # trimmed away
    assert book.apply(verdict_for(results[-1], "bag"))
    assert book.apply(verdict_for(results[-20], "bag"))
    assert not book.apply(verdict_for(results[-21], "bag"))


def test_a_verdict_delivered_twice_is_applied_and_counted_once() -> None:
    from edgecascade.edge_agent.verdicts import VerdictBook
    from tests.utils.factories import make_result

    book = VerdictBook()
    result = make_result()
    book.remember(result)
    verdict = verdict_for(result, "bag")
    for _ in range(3):  # after two broker restarts
        assert book.apply(verdict)
    assert (book.counts["verdicts.received"], book.counts["verdicts.duplicate"]) == (1, 2)
    assert book.counts["verdicts.corrected"] == 1
    again = verdict.model_copy(update={"escalation_id": "0190a4c8-0000-7000-8000-000000000001"})
    assert book.apply(again)  # a second escalation of the same result is a new verdict
    assert book.counts["verdicts.received"] == 2


def test_the_policy_fingerprint_follows_the_rules_that_decide(tmp_path: Path) -> None:
    from edgecascade.edge_agent.emit import policy_fingerprint
    from edgecascade.edge_agent.settings import AgentSettings

    base = AgentSettings(model=tmp_path / "m.tflite")
    same = AgentSettings(model=tmp_path / "other.tflite", source=SourceSettings(fps=2))
    stricter = AgentSettings(
        model=tmp_path / "m.tflite", escalation=EscalationSettings(threshold=0.9)
    )
    assert policy_fingerprint(base) == policy_fingerprint(same)  # model and fps decide nothing
    assert policy_fingerprint(base) != policy_fingerprint(stricter)
