"""A batch's events on the REST API and the WebSocket: its own (batch_failed,
batch_finished, batch_cancelled) and its members', and only for who may see the batch."""

from __future__ import annotations

from activejob import Batch, JobQueue
from activejob.web import create_app, viewer_token

from .conftest import TestClient, receive, receive_until
from .jobs import Quick

SECRET = "viewer-secret-0123456789abcdef"


def test_the_api_gives_a_batchs_own_events_and_its_members(queue: JobQueue, client: TestClient) -> None:
    with Batch(description="evented") as batch:
        member = Quick.perform_later(value=1)
    Quick.perform_later(value=2)  # not a member
    queue.run_until_idle()
    body = client.get(f"/api/batches/{batch.id}/events").json()
    seen = [(e["job_id"], e["event"]) for e in body["events"]]
    assert seen == [(member.id, "enqueued"), (member.id, "started"), (member.id, "completed"),
                    (None, "batch_finished")]
    assert {e["batch_id"] for e in body["events"]} == {batch.id}
    assert body["events"][-1]["data"]["completed"] == 1
    same = client.get("/api/events", params={"batch_id": batch.id}).json()["events"]
    assert [e["id"] for e in same] == [e["id"] for e in body["events"]]
    after = client.get(f"/api/batches/{batch.id}/events", params={"after": body["events"][-1]["id"]}).json()
    assert after["events"] == []


def test_a_websocket_subscribed_to_a_batch_gets_its_members_events_and_batch_finished(
        queue: JobQueue, client: TestClient) -> None:
    with Batch() as batch:
        member = Quick.perform_later(value=1)
    with client.websocket_connect("/api/ws") as ws:
        ws.send_json({"action": "subscribe", "batch_id": batch.id, "since": 0})
        assert receive(ws)["subscription"] == f"batch:{batch.id}"
        outsider = Quick.perform_later(value=2)
        queue.run_until_idle()
        got = receive_until(ws, lambda m: m.get("event") == "batch_finished")
    assert {m["subscription"] for m in got} == {f"batch:{batch.id}"}
    assert {m["job_id"] for m in got} == {member.id, None}
    assert outsider.id not in {m["job_id"] for m in got}
    assert got[-1]["batch_id"] == batch.id and got[-1]["status"] == "completed"


def test_a_viewer_follows_only_its_owners_batch_events(queue: JobQueue) -> None:
    with Batch(owner="ann") as mine:
        Quick.set(owner="ann").perform_later(value=1)
    with Batch(owner="bob") as theirs:
        Quick.set(owner="bob").perform_later(value=2)
    queue.run_until_idle()
    app = create_app(queue, secret=SECRET)
    token = viewer_token(SECRET, owner="ann", ttl=60)
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as c:
        assert c.get(f"/api/batches/{theirs.id}/events", headers=auth).status_code == 404
        assert c.get("/api/events", params={"batch_id": theirs.id}, headers=auth).status_code == 404
        own = c.get(f"/api/batches/{mine.id}/events", headers=auth).json()["events"]
        assert own[-1]["event"] == "batch_finished" and own[-1]["owner"] == "ann"
        with c.websocket_connect(f"/api/ws?token={token}") as ws:
            ws.send_json({"action": "subscribe", "batch_id": theirs.id})
            refused = receive(ws)
            assert refused["type"] == "error" and "not one of yours" in refused["error"]
            ws.send_json({"action": "subscribe", "batch_id": mine.id})
            assert receive(ws)["type"] == "subscribed"
