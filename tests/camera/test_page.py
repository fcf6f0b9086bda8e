"""The browser camera page as a device of a real site: served by the cloud app, opened in headless
chromium whose camera plays a film of real images, connected over MQTT over WebSockets to a
Mosquitto with the deployment's password file and ACL, with a real gateway acknowledging and
forwarding. Every message the page sends is decoded by the contract's own decoder and checked
against the published JSON Schemas (docs/contract/schemas)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import jsonschema
from playwright.sync_api import Browser, Page

from edgecascade.cloud.app import create_app
from edgecascade.cloud.settings import CloudSettings
from edgecascade.shared.codec import Decoded, decode, encode
from edgecascade.shared.framecodec import image_size
from edgecascade.shared.ids import new_message_id
from edgecascade.shared.manifest import build_manifest
from edgecascade.shared.messages import (
    CommandMessage,
    EscalationHeader,
    Prediction,
    ReplyMessage,
    ResultBatchMessage,
    ResultMessage,
    StateMessage,
    TelemetryMessage,
    VerdictMessage,
)
from edgecascade.shared.model_messages import ModelAckMessage, ModelOfferMessage
from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.topics import Kind, ModelSub, Topic, topic
from tests.camera.conftest import TIMEOUT_MS, CameraSite
from tests.cloud.conftest import serving
from tests.utils.camera import DEVICE, MODEL, SITE, TESTER
from tests.utils.mqtt import Collector, wait_until
from tests.utils.paths import EDGE_MODEL, REPO

SCHEMAS = REPO / "docs" / "contract" / "schemas"


def decoded(collector: Collector, kind: Kind, sub: str | None = None) -> list[Decoded]:
    """The messages of ``kind`` from the camera so far, through the contract's decoder and
    against its JSON Schema; a message that fails either fails the test."""
    out = []
    for message in collector.messages:
        parsed = Topic.parse(message.topic)
        if (parsed.device, parsed.kind, parsed.sub) != (DEVICE, kind, sub):
            continue
        item = decode(parsed, message.payload)
        schema = json.loads((SCHEMAS / f"{type(item.message).__name__}.json").read_text())
        jsonschema.validate(json.loads(item.message.model_dump_json()), schema)
        if item.body is None:  # a JSON kind: the wire text itself against the schema
            jsonschema.validate(json.loads(message.payload), schema)
        out.append(item)
    return out


def open_page(browser: Browser, base: str, query: dict[str, str]) -> Page:
    context = browser.new_context(permissions=["camera"])
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{base}/camera/?{urlencode(query)}")
    return page


def test_the_camera_page_is_a_device_of_the_site(
    camera_page: Path, camera_browser: Browser, camera_site: CameraSite, tmp_path: Path
) -> None:
    site = camera_site.site
    camera = {"dir": camera_page, "model": MODEL}
    settings = CloudSettings(data_dir=tmp_path / "cloud", camera=camera)
    tester = site.mqtt(TESTER)
    query = site.page_query(threshold="0.9", fps="5", telemetry="1", confirm="2")
    with (
        serving(create_app(settings, start_ingest=False)) as base,
        Collector(tester, f"ec/v1/{SITE}/#", client_id=TESTER) as seen,
        Collector(camera_site.cloud.settings, "ec/v1/#", client_id="cloud") as cloud,
    ):
        page = open_page(camera_browser, base, query)
        assert wait_until(lambda: len(decoded(seen, Kind.ESCALATION)) >= 2, timeout=40)
        assert wait_until(lambda: bool(decoded(seen, Kind.TELEMETRY)), timeout=10)
        states = [d.message for d in decoded(seen, Kind.STATE)]
        assert isinstance(states[0], StateMessage) and states[0].status == "online"
        assert states[0].model is not None and states[0].model.name == "fashion-edge"
        escalations = decoded(seen, Kind.ESCALATION)  # before the results: each has its result
        results = [d.message for d in decoded(seen, Kind.RESULT)]
        by_id = {r.msg_id: r for r in results if isinstance(r, ResultMessage) and len(r.top) == 3}
        assert len(by_id) == len(results) >= 2
        for item in escalations:
            header = item.message
            assert isinstance(header, EscalationHeader) and item.body is not None
            assert image_size(item.body, "image/jpeg") == (header.width, header.height)
            assert by_id[header.result_id].escalated and header.top[0].score < 0.9
        # The gateway took them: acknowledged (the page forgets them) and forwarded upstream.
        assert wait_until(lambda: forwarded(cloud) >= 3, timeout=10)
        assert wait_until(lambda: page.evaluate("window.edgecascadeCamera.link.pending.size") < 3)
        telemetry = decoded(seen, Kind.TELEMETRY)[-1].message
        assert isinstance(telemetry, TelemetryMessage) and telemetry.inferences >= 1
        assert "invoke" in telemetry.latency_ms

        escalation = decoded(seen, Kind.ESCALATION)[0].message
        assert isinstance(escalation, EscalationHeader)
        verdict = VerdictMessage(
            escalation_id=escalation.msg_id,
            result_id=escalation.result_id,
            model=escalation.model,
            top=[Prediction(index=8, label="bag", score=0.99)],
            agrees=escalation.top[0].label == "bag",
        )
        wire = Outgoing(topic(SITE, DEVICE, Kind.VERDICT), encode(verdict))
        send(seen, wire)
        row = page.locator(f'tr[data-result="{escalation.result_id}"]')
        assert row.get_attribute("data-verdict", timeout=10_000) in ("agrees", "corrected")
        assert "bag" in (page.text_content("#verdict") or "")

        check_commands(seen)
        check_offer_refused(seen)
        page.context.close()  # the tab goes: the broker publishes the page's will
        assert wait_until(lambda: last_state(seen).status == "offline")
        # The will, not a goodbye: made at connect time, before the online state.
        assert last_state(seen).msg_id < states[0].msg_id


def last_state(seen: Collector) -> StateMessage:
    state = decoded(seen, Kind.STATE)[-1].message
    assert isinstance(state, StateMessage)
    return state


def forwarded(cloud: Collector) -> int:
    """The camera's results the gateway forwarded to the cloud broker (one by one or batched)."""
    count = 0
    for message in cloud.messages:
        parsed = Topic.parse(message.topic)
        if parsed.kind is Kind.RESULT and parsed.device == DEVICE:
            count += 1
        elif parsed.kind is Kind.RESULT_BATCH:
            batch = decode(parsed, message.payload).message
            assert isinstance(batch, ResultBatchMessage)
            count += sum(1 for item in batch.results if item.device == DEVICE)
    return count


def check_offer_refused(seen: Collector) -> None:
    """An unsigned offer gets a failed ack that says why (tests/camera/test_rollout.py installs
    a signed one)."""
    manifest = build_manifest(
        EDGE_MODEL.read_bytes(), name="fashion-edge", version="2.0.0", labels=["a"]
    )
    offer = ModelOfferMessage(rollout_id="r1", manifest=manifest)
    send(seen, Outgoing(topic(SITE, DEVICE, Kind.MODEL, ModelSub.OFFER), encode(offer)))
    assert wait_until(lambda: bool(decoded(seen, Kind.MODEL, ModelSub.ACK)), timeout=10)
    ack = decoded(seen, Kind.MODEL, ModelSub.ACK)[0].message
    assert isinstance(ack, ModelAckMessage) and ack.rollout_id == "r1"
    assert ack.status == "failed" and "is not signed" in ack.detail
    assert ack.sha256 == manifest.sha256


def send(collector: Collector, wire: Outgoing) -> None:
    """Publish on the collector's own connection (the broker takes the user name as the client
    id: a second connection of the test user would throw the first off)."""
    assert collector.link.confirm(collector.link.publish(wire), 10)


def check_commands(seen: Collector) -> None:
    """diagnostics is answered with the page's logs; config is refused with the reason."""
    commands = {
        "diagnostics": CommandMessage(correlation=new_message_id(), args={"lines": 5}),
        "config": CommandMessage(correlation=new_message_id(), args={"version": 2}),
    }
    for name, command in commands.items():
        send(seen, Outgoing(topic(SITE, DEVICE, Kind.CMD, name), encode(command)))
    for name, command in commands.items():

        def replied(name: str = name) -> bool:
            return bool(decoded(seen, Kind.REPLY, name))

        assert wait_until(replied, timeout=10), name
        reply = decoded(seen, Kind.REPLY, name)[0].message
        assert isinstance(reply, ReplyMessage) and reply.correlation == command.correlation
        if name == "diagnostics":
            assert reply.status == "ok" and isinstance(reply.data, dict)
            assert "***" in json.dumps(reply.data["settings"])  # the password is not sent
        else:
            assert reply.status == "error" and "remote config" in (reply.error or "")
