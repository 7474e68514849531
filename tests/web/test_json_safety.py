"""What the REST API and the WebSocket send is always JSON a browser can parse, and what
they are sent never crashes them (SQLite file and PostgreSQL)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from activejob import BaseJob, JobQueue, job

from .conftest import TestClient, csrf_headers, receive, receive_until, strict_json
from .jobs import Wait


def _job_with_nan_in_its_log() -> type[BaseJob[Any]]:
    @job("web_nan_log", max_retries=0)
    class NanLog(BaseJob[Any]):
        def perform(self, *args: Any, **kwargs: Any) -> str:
            self.log("measured", value=float("nan"), high=float("inf"), low=float("-inf"), fine=1.5)
            return "done"

    return NanLog


def test_nan_in_a_log_reads_as_null_on_every_endpoint(queue: JobQueue, client: TestClient) -> None:
    handle = _job_with_nan_in_its_log().perform_later()
    queue.run_until_idle()
    for path in (f"/api/jobs/{handle.id}", f"/api/jobs/{handle.id}/events", "/api/events",
                 f"/api/events?job_id={handle.id}", "/api/jobs"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.text)
        strict_json(response.text)
    events = strict_json(client.get(f"/api/jobs/{handle.id}").text)["events"]
    logged = next(e["data"] for e in events if e["event"] == "log")
    assert (logged["value"], logged["high"], logged["low"], logged["fine"]) == (None, None, None, 1.5)
    assert client.get(f"/jobs/{handle.id}", headers={"accept": "text/html"}).status_code == 200


def test_nan_in_a_log_reaches_websocket_clients_as_null(queue: JobQueue, client: TestClient) -> None:
    handle = _job_with_nan_in_its_log().perform_later()
    queue.run_until_idle()
    with client.websocket_connect("/api/ws") as ws:
        ws.send_json({"action": "subscribe", "job_id": handle.id, "since": 0})
        messages = receive_until(ws, lambda m: m.get("event") == "completed")  # each one parsed strictly
    logged = next(m["data"] for m in messages if m.get("event") == "log")
    assert logged["value"] is None and logged["high"] is None and logged["fine"] == 1.5


def test_deeply_nested_json_is_refused_and_the_websocket_stays_usable(
        client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    deep = "[" * 2000 + "]" * 2000  # under the 4 KB frame limit
    with caplog.at_level(logging.DEBUG), client.websocket_connect("/api/ws") as ws:
        ws.send_text(deep)
        error = receive(ws)
        assert error["type"] == "error" and "nested" in error["error"]
        ws.send_text('{"action": "subscribe", "job_id": ' + deep + "}")
        assert receive(ws)["type"] == "error"
        ws.send_json({"action": "ping"})
        assert receive(ws) == {"type": "pong"}
    assert "RecursionError" not in caplog.text


def test_deeply_nested_json_body_is_a_400(queue: JobQueue, client: TestClient) -> None:
    handle = Wait.perform_later(seconds=1)
    response = client.post(f"/api/jobs/{handle.id}/cancel", content="[" * 4000 + "]" * 4000,
                           headers={**csrf_headers(client), "content-type": "application/json"})
    assert response.status_code == 400 and "nested" in response.json()["error"]
    assert queue.get_job(handle.id).status == "pending"  # type: ignore[union-attr]
