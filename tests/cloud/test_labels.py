"""Label overrides over the served API: who may set them, which labels, the review queue, and a
person's label winning over the cloud's in the escalations API."""

from __future__ import annotations

from edgecascade.cloud.db.models import LabelOverride
from tests.cloud.conftest import ApiClient
from tests.utils.judged import store_judged

UNKNOWN = "01234567-89ab-7def-8123-456789abcdef"


def test_an_operator_labels_a_frame_and_the_label_wins(client: ApiClient) -> None:
    judged = store_judged(client.services, edge="cat", cloud="dog")
    url = f"/api/escalations/{judged.msg_id}/label"
    operator = client.as_role("operator")

    # A viewer reads, an operator writes.
    refused = client.put(url, json={"label": "bird"})
    assert refused.status_code == 403 and "this needs operator" in refused.text
    assert client.delete(url).status_code == 403

    # A label the edge model does not have: 422 naming it and the ones it has.
    bad = client.put(url, json={"label": "horse"}, headers=operator)
    assert bad.status_code == 422
    assert "'horse'" in bad.json()["detail"] and "cat, dog, bird" in bad.json()["detail"]
    gone = client.put(f"/api/escalations/{UNKNOWN}/label", json={"label": "cat"}, headers=operator)
    assert gone.status_code == 404 and UNKNOWN in gone.json()["detail"]

    def item() -> dict[str, object]:
        items = client.get("/api/escalations").json()["items"]
        found: dict[str, object] = next(i for i in items if i["msg_id"] == judged.msg_id)
        return found

    assert (item()["final_label"], item()["label_source"]) == ("dog", "cloud")
    put = client.put(url, json={"label": "bird", "note": "a bird"}, headers=operator)
    assert put.status_code == 200, put.text
    assert put.json()["label"] == "bird" and put.json()["created_by"].startswith("test-operator")
    assert (item()["final_label"], item()["label_source"]) == ("bird", "human")
    assert item()["verdict"]["label"] == "dog"  # type: ignore[index]  # the cloud's stays

    # Replaced, then withdrawn: the cloud's label counts again; a second withdrawal is a 404.
    assert client.put(url, json={"label": "cat"}, headers=operator).json()["label"] == "cat"
    with client.services.sessions() as session:
        assert session.get(LabelOverride, judged.msg_id).label == "cat"  # type: ignore[union-attr]
    assert client.delete(url, headers=operator).status_code == 204
    assert (item()["final_label"], item()["label_source"]) == ("dog", "cloud")
    assert client.delete(url, headers=operator).status_code == 404


def test_unjudged_escalations_have_no_final_label(client: ApiClient) -> None:
    waiting = store_judged(client.services, cloud=None)
    (only,) = client.get("/api/escalations").json()["items"]
    assert only["msg_id"] == waiting.msg_id
    assert (only["final_label"], only["label_source"]) == (None, None)


def test_the_queue_is_unlabelled_disagreements_newest_first(client: ApiClient) -> None:
    services = client.services
    old = store_judged(services, "s1", edge="cat", cloud="dog", captured_at=1000.0)
    new = store_judged(services, "s1", edge="dog", cloud="bird", captured_at=2000.0)
    other_site = store_judged(services, "s2", edge="cat", cloud="bird", captured_at=1500.0)
    store_judged(services, "s1", edge="cat", cloud="cat", captured_at=3000.0)  # agrees
    store_judged(services, "s1", cloud=None, captured_at=4000.0)  # not judged
    labelled = store_judged(services, "s1", edge="cat", cloud="dog", captured_at=5000.0)
    operator = client.as_role("operator")
    url = f"/api/escalations/{labelled.msg_id}/label"
    assert client.put(url, json={"label": "dog"}, headers=operator).status_code == 200

    queue = client.get("/api/labels/queue").json()
    assert queue["total"] == 3
    assert [i["msg_id"] for i in queue["items"]] == [new.msg_id, other_site.msg_id, old.msg_id]
    first = queue["items"][0]
    assert (first["edge_label"], first["cloud_label"]) == ("dog", "bird")
    assert first["labels"] == ["cat", "dog", "bird"]
    assert first["edge_model"] == "mobilenet_v2@1.0.0" and first["cloud_model"] == "cloud@2"
    assert client.get(first["frame_url"]).status_code == 200
    site = client.get("/api/labels/queue", params={"site": "s1", "limit": 1}).json()
    assert site["total"] == 2 and [i["msg_id"] for i in site["items"]] == [new.msg_id]
    assert client.get("/api/labels/queue", params={"site": "a/b"}).status_code == 422
