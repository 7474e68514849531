"""The WebSocket API: rooms per job, per owner and for everything, replay after a
disconnect, and events from a worker in another process."""

from __future__ import annotations

from typing import Any

import pytest

from activejob import JobQueue

from .conftest import TestClient, receive, receive_until
from .jobs import Quick, Steps


def subscribe(ws: Any, **spec: Any) -> dict[str, Any]:
    """Subscribe and return the acknowledgement (events of earlier rooms may come first)."""
    ws.send_json({"action": "subscribe", **spec})
    while True:
        ack = receive(ws)
        if ack["type"] != "event":
            assert ack["type"] == "subscribed", ack
            return ack


def test_rooms_by_job_owner_and_all(queue: JobQueue, client: TestClient) -> None:
    mine = Quick.set(owner="alice").perform_later(value=1)
    with client.websocket_connect("/api/ws") as ws:
        assert subscribe(ws, job_id=mine.id)["subscription"] == f"job:{mine.id}"
        assert subscribe(ws, owner="alice")["subscription"] == "owner:alice"
        assert subscribe(ws)["subscription"] == "all"
        other = Quick.set(owner="bob").perform_later(value=2)
        queue.run_until_idle()
        got: dict[str, list[tuple[int, str]]] = {}

        def complete() -> bool:
            return ((mine.id, "completed") in got.get(f"job:{mine.id}", [])
                    and (mine.id, "completed") in got.get("owner:alice", [])
                    and {(mine.id, "completed"), (other.id, "completed")} <= set(got.get("all", [])))

        while not complete():
            try:
                m = receive(ws, 10)
            except TimeoutError:
                raise AssertionError(f"missing events; got {got}") from None
            assert m["type"] == "event" and isinstance(m["id"], int) and m["cursor"] <= m["id"]
            got.setdefault(m["subscription"], []).append((m["job_id"], m["event"]))
        assert {job for job, _ in got[f"job:{mine.id}"]} == {mine.id}
        assert {job for job, _ in got["owner:alice"]} == {mine.id}
        kinds = [e for _, e in got[f"job:{mine.id}"]]
        assert kinds[-2:] == ["started", "completed"]

        ws.send_json({"action": "unsubscribe", "owner": "alice"})
        assert receive(ws) == {"type": "unsubscribed", "subscription": "owner:alice"}
        ws.send_json({"action": "ping"})
        assert receive(ws) == {"type": "pong"}
        for bad in ({"action": "dance"}, {"action": "subscribe", "job_id": "x"}, {"action": "subscribe", "since": -1}):
            ws.send_json(bad)
            assert receive(ws)["type"] == "error"
        ws.send_text("not json")
        assert receive(ws)["type"] == "error"


def test_replay_after_a_disconnect(queue: JobQueue, client: TestClient) -> None:
    handle = Steps.perform_later(steps=3, delay=0.0)
    with client.websocket_connect("/api/ws") as ws:
        start = subscribe(ws, job_id=handle.id, since=0)
        assert start["cursor"] == 0
        first = receive(ws)
        assert first["event"] == "enqueued" and first["job_id"] == handle.id
        cursor = first["cursor"]
    # Disconnected: the job runs meanwhile.
    queue.run_until_idle()
    with client.websocket_connect("/api/ws") as ws:
        subscribe(ws, job_id=handle.id, since=cursor)
        replayed = receive_until(ws, lambda m: m.get("event") == "completed")
    # Resuming from a cursor may repeat an event (dropped by id), but never loses one.
    new = [m for m in replayed if m["id"] != first["id"]]
    kinds = [m["event"] for m in new]
    assert kinds[0] == "started" and kinds[-1] == "completed" and "progress" in kinds and "log" in kinds
    ids = [m["id"] for m in new]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    stored = [e.id for e in queue.events(handle.id)]
    assert [first["id"], *ids] == stored
    # Live events continue after a replay, and nothing from the replay comes again.
    with client.websocket_connect("/api/ws") as ws:
        subscribe(ws, since=ids[-1])
        later = Quick.perform_later(value=3)
        msg = receive(ws)
        assert msg["job_id"] == later.id and msg["event"] == "enqueued", (msg, ids)


@pytest.mark.slow
def test_events_of_a_worker_in_another_process_reach_the_client(
        queue: JobQueue, client: TestClient, spawn_worker: Any) -> None:
    spawn_worker()
    handle = Steps.perform_later(steps=4, delay=0.05)
    with client.websocket_connect("/api/ws") as ws:
        subscribe(ws, job_id=handle.id)
        messages = receive_until(ws, lambda m: m.get("event") == "completed", timeout=30)
    kinds = [m["event"] for m in messages]
    assert "started" in kinds and "progress" in kinds and kinds[-1] == "completed"
    progress = [m["data"] for m in messages if m["event"] == "progress"]
    assert progress[-1]["current"] == 4 and progress[-1]["total"] == 4 and progress[-1]["phase"] == "upload"
    assert messages[-1]["data"]["result"] == {"rows": 400}


def test_websocket_refuses_other_sites(client: TestClient) -> None:
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as refused, \
            client.websocket_connect("/api/ws", headers={"origin": "https://evil.example"}):
        pass
    assert refused.value.code == 4403
    with client.websocket_connect("/api/ws", headers={"origin": "http://localhost"}) as ws:
        ws.send_json({"action": "ping"})
        assert receive(ws) == {"type": "pong"}
