"""Viewer tokens: an application's own users read only their own jobs and events, through
the REST API, the WebSocket and the progress widget; the operators' access is unchanged.
Also the authorize hook returning a scope, and the WebSocket's rate limits."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketDisconnect

from activejob import JobQueue, clock
from activejob.web import InvalidViewerToken, Scope, create_app, read_viewer_token, viewer_token
from activejob.web import ws as ws_module

from .conftest import TestClient, receive, receive_until, served
from .jobs import Quick, Steps, Wait
from .test_browser import browser  # noqa: F401  (the real-browser fixture, for the widget test)

ADMIN = "admin-token-for-the-operators"
SECRET = "viewer-secret-0123456789abcdef"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def app_client(queue: JobQueue) -> Iterator[TestClient]:
    """The dashboard with an operators' token and viewer tokens, on both databases."""
    app = create_app(queue, token=ADMIN, secret=SECRET)
    app.state.activejob.relay.poll_interval = 0.2
    with TestClient(app) as c:
        yield c


@pytest.fixture
def jobs(queue: JobQueue) -> dict[str, list[int]]:
    """alice has two jobs, bob one; nothing has run."""
    return {"alice": [Quick.set(owner="alice").perform_later(value=n).id for n in (1, 2)],
            "bob": [Quick.set(owner="bob").perform_later(value=3).id]}


def _later(seconds: float) -> Any:
    moved = clock.now() + timedelta(seconds=seconds)
    return lambda: moved


# -- the token itself -------------------------------------------------------------------------

def test_a_viewer_token_is_signed_and_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    token = viewer_token(SECRET, owner="user-42", ttl=60)
    scope = read_viewer_token(SECRET, token)
    assert (scope.owner, scope.job_ids, scope.can_cancel) == ("user-42", frozenset(), False)
    shared = read_viewer_token(SECRET, viewer_token(SECRET, job_ids=[3, 1], can_cancel=True))
    assert shared.owner is None and shared.job_ids == {1, 3} and shared.can_cancel
    with pytest.raises(InvalidViewerToken, match="signature"):
        read_viewer_token("another-secret-entirely", token)
    # Changing the payload (another owner) without the secret breaks the signature.
    prefix, rest = token[:5], token[5:]
    body, sig = rest.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["owner"] = "user-1"
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidViewerToken):
        read_viewer_token(SECRET, f"{prefix}{forged}.{sig}")
    monkeypatch.setattr(clock, "now", _later(61))
    with pytest.raises(InvalidViewerToken, match="expired"):
        read_viewer_token(SECRET, token)
    with pytest.raises(ValueError):
        viewer_token(SECRET)  # neither owner nor job ids: it would grant nothing
    with pytest.raises(ValueError):
        viewer_token("", owner="x")


# -- REST ---------------------------------------------------------------------------------------

def test_a_viewer_reads_only_its_owners_jobs(app_client: TestClient, jobs: dict[str, list[int]]) -> None:
    mine = bearer(viewer_token(SECRET, owner="alice"))
    listed = app_client.get("/api/jobs", headers=mine)
    assert listed.status_code == 200
    assert sorted(j["id"] for j in listed.json()["jobs"]) == jobs["alice"]
    assert all(j["actions"] == [] for j in listed.json()["jobs"])  # nothing it could do
    # The owner filter cannot widen the list.
    assert app_client.get("/api/jobs?owner=bob", headers=mine).json()["jobs"] == []
    assert len(app_client.get("/api/jobs?limit=1", headers=mine).json()["jobs"]) == 1
    assert app_client.get("/api/jobs?limit=1", headers=mine).json()["has_more"] is True
    own, other = jobs["alice"][0], jobs["bob"][0]
    assert app_client.get(f"/api/jobs/{own}", headers=mine).json()["job"]["owner"] == "alice"
    assert app_client.get(f"/api/jobs/{own}/events", headers=mine).json()["events"][0]["event"] == "enqueued"
    for path in (f"/api/jobs/{other}", f"/api/jobs/{other}/events", f"/api/events?job_id={other}"):
        refused = app_client.get(path, headers=mine)
        assert refused.status_code == 404, path
        assert "bob" not in refused.text
    events = app_client.get("/api/events", headers=mine).json()["events"]
    assert {e["job_id"] for e in events} == set(jobs["alice"])
    assert app_client.get("/api/events?owner=bob", headers=mine).json()["events"] == []
    # The same through ?token= (the widget's way).
    query = viewer_token(SECRET, owner="alice")
    assert sorted(j["id"] for j in app_client.get(f"/api/jobs?token={query}").json()["jobs"]) == jobs["alice"]
    assert app_client.get(f"/api/jobs/{other}?token={query}").status_code == 404
    # The operators see everything, as before.
    assert len(app_client.get("/api/jobs", headers=bearer(ADMIN)).json()["jobs"]) == 3


def test_a_viewer_changes_nothing(app_client: TestClient, queue: JobQueue, jobs: dict[str, list[int]]) -> None:
    mine = bearer(viewer_token(SECRET, owner="alice"))
    own = jobs["alice"][0]
    for path in (f"/api/jobs/{own}/cancel", f"/api/jobs/{own}/retry", f"/api/jobs/{own}/delete",
                 "/api/queues/default/pause", "/api/queues/default/resume"):
        answer = app_client.post(path, headers=mine)
        assert answer.status_code == 403, path
        assert "viewer token" in answer.json()["error"]
    for path in ("/api/stats", "/api/workers", "/api/job-types"):
        assert app_client.get(path, headers=mine).status_code == 403, path
    page = app_client.get(f"/?token={viewer_token(SECRET, owner='alice')}", headers={"accept": "text/html"},
                          follow_redirects=False)
    assert page.status_code == 403 and "activejob_session" not in page.headers.get("set-cookie", "")
    assert queue.get_job(own).status == "pending"  # type: ignore[union-attr]
    assert queue.paused_queues() == []


def test_a_token_with_can_cancel_cancels_only_its_own_jobs(app_client: TestClient, queue: JobQueue,
                                                           jobs: dict[str, list[int]]) -> None:
    mine = bearer(viewer_token(SECRET, owner="alice", can_cancel=True))
    own, other = jobs["alice"][0], jobs["bob"][0]
    assert app_client.get(f"/api/jobs/{own}", headers=mine).json()["job"]["actions"] == ["cancel"]
    assert app_client.post(f"/api/jobs/{other}/cancel", headers=mine).status_code == 404
    assert app_client.post(f"/api/jobs/{own}/retry", headers=mine).status_code == 403
    assert app_client.post(f"/api/jobs/{own}/delete", headers=mine).status_code == 403
    done = app_client.post(f"/api/jobs/{own}/cancel", headers=mine, json={"expected_status": "pending"})
    assert done.status_code == 200 and done.json()["job"]["status"] == "cancelled"
    # ?token= in the URL is proof enough (no CSRF cookie): another site cannot know the token.
    token = viewer_token(SECRET, owner="alice", can_cancel=True)
    assert app_client.post(f"/api/jobs/{jobs['alice'][1]}/cancel?token={token}").status_code == 200
    assert queue.get_job(other).status == "pending"  # type: ignore[union-attr]


def test_a_token_for_some_job_ids(app_client: TestClient, jobs: dict[str, list[int]]) -> None:
    shared = bearer(viewer_token(SECRET, job_ids=[jobs["bob"][0]], ttl=600))
    assert [j["id"] for j in app_client.get("/api/jobs", headers=shared).json()["jobs"]] == jobs["bob"]
    assert app_client.get("/api/jobs?status=completed", headers=shared).json()["jobs"] == []
    assert app_client.get(f"/api/jobs/{jobs['bob'][0]}", headers=shared).status_code == 200
    assert app_client.get(f"/api/jobs/{jobs['alice'][0]}", headers=shared).status_code == 404
    assert {e["job_id"] for e in app_client.get("/api/events", headers=shared).json()["events"]} == set(jobs["bob"])


def test_an_expired_or_tampered_token_is_a_401(app_client: TestClient, jobs: dict[str, list[int]],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    token = viewer_token(SECRET, owner="alice", ttl=30)
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    forged = viewer_token("not-the-dashboards-secret", owner="alice")
    for bad in (tampered, forged):
        answer = app_client.get("/api/jobs", headers=bearer(bad))
        assert answer.status_code == 401 and "viewer token" in answer.json()["error"]
        assert app_client.get(f"/api/jobs?token={bad}").status_code == 401
    monkeypatch.setattr(clock, "now", _later(31))
    answer = app_client.get("/api/jobs", headers=bearer(token))
    assert answer.status_code == 401 and "expired" in answer.json()["error"]


def test_the_authorize_hook_may_return_a_scope(queue: JobQueue, jobs: dict[str, list[int]]) -> None:
    def authorize(conn: HTTPConnection) -> bool | str | Scope:
        user = conn.headers.get("x-user", "")
        if user == "admin":
            return True
        if user == "bob":
            return "bob"
        if user == "guest":
            return Scope(job_ids=[jobs["alice"][1]])
        return False

    with TestClient(create_app(queue, authorize=authorize)) as client:
        assert len(client.get("/api/jobs", headers={"x-user": "admin"}).json()["jobs"]) == 3
        assert [j["id"] for j in client.get("/api/jobs", headers={"x-user": "bob"}).json()["jobs"]] == jobs["bob"]
        assert client.get(f"/api/jobs/{jobs['alice'][0]}", headers={"x-user": "bob"}).status_code == 404
        assert client.post(f"/api/jobs/{jobs['bob'][0]}/cancel", headers={"x-user": "bob"}).status_code == 403
        assert [j["id"] for j in client.get("/api/jobs", headers={"x-user": "guest"}).json()["jobs"]] == \
            [jobs["alice"][1]]
        assert client.get("/api/jobs", headers={"x-user": "eve"}).status_code == 403
        with client.websocket_connect("/api/ws", headers={"x-user": "bob"}) as ws:
            ws.send_json({"action": "subscribe"})
            assert receive(ws)["type"] == "error"


def test_without_a_secret_viewer_tokens_grant_nothing(queue: JobQueue, jobs: dict[str, list[int]]) -> None:
    with TestClient(create_app(queue, token=ADMIN)) as client:
        assert client.get("/api/jobs", headers=bearer(viewer_token(SECRET, owner="alice"))).status_code == 401


# -- WebSocket ----------------------------------------------------------------------------------

def _subscribe(ws: Any, **spec: Any) -> dict[str, Any]:
    ws.send_json({"action": "subscribe", **spec})
    while True:
        answer = receive(ws)
        if answer["type"] != "event":
            return answer


def test_a_viewer_subscribes_only_to_its_own_rooms(app_client: TestClient, queue: JobQueue,
                                                   jobs: dict[str, list[int]]) -> None:
    token = viewer_token(SECRET, owner="alice")
    own, other = jobs["alice"][0], jobs["bob"][0]
    with app_client.websocket_connect(f"/api/ws?token={token}") as ws:
        for spec, words in (({"job_id": other}, "not one of yours"), ({"owner": "bob"}, "owner 'bob'"),
                            ({}, "every job"), ({"job_id": 999_999}, "not one of yours")):
            refused = _subscribe(ws, **spec)
            assert refused["type"] == "error" and refused["error"].startswith("forbidden") and words in \
                refused["error"], (spec, refused)
        assert _subscribe(ws, job_id=own, since=0)["subscription"] == f"job:{own}"
        assert _subscribe(ws, owner="alice")["subscription"] == "owner:alice"
        queue.run_until_idle()
        seen = receive_until(ws, lambda m: m.get("event") == "completed" and m["subscription"] == f"job:{own}")
        assert {m["job_id"] for m in seen if m["type"] == "event"} <= set(jobs["alice"])
        ws.send_json({"action": "ping"})
        while receive(ws)["type"] != "pong":
            pass


def test_a_bad_token_closes_the_websocket_with_a_reason(app_client: TestClient,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    forged = viewer_token("not-the-dashboards-secret", owner="alice")
    with pytest.raises(WebSocketDisconnect) as refused, app_client.websocket_connect(f"/api/ws?token={forged}"):
        pass
    assert refused.value.code == 4401 and "signature" in (refused.value.reason or "")
    token = viewer_token(SECRET, owner="alice", ttl=30)
    monkeypatch.setattr(clock, "now", _later(31))
    with pytest.raises(WebSocketDisconnect) as expired, app_client.websocket_connect(f"/api/ws?token={token}"):
        pass
    assert expired.value.code == 4401 and "expired" in (expired.value.reason or "")


def test_the_socket_closes_when_the_token_expires(app_client: TestClient, jobs: dict[str, list[int]]) -> None:
    token = viewer_token(SECRET, owner="alice", ttl=2)
    with app_client.websocket_connect(f"/api/ws?token={token}") as ws:
        assert _subscribe(ws, owner="alice")["type"] == "subscribed"
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                message = receive(ws, timeout=10)
                if message["type"] == "error":
                    assert "expired" in message["error"]
        assert closed.value.code == 4401 and "expired" in (closed.value.reason or "")


def test_websocket_messages_and_subscriptions_are_rate_limited(app_client: TestClient,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ws_module, "MESSAGES_PER_SECOND", 0.5)
    monkeypatch.setattr(ws_module, "MESSAGE_BURST", 6)
    monkeypatch.setattr(ws_module, "MAX_STRIKES", 3)
    monkeypatch.setattr(ws_module, "MAX_SUBSCRIPTIONS", 2)
    with app_client.websocket_connect("/api/ws", headers=bearer(ADMIN)) as ws:
        assert _subscribe(ws, job_id=1)["type"] == "subscribed"
        assert _subscribe(ws, job_id=2)["type"] == "subscribed"
        too_many = _subscribe(ws, job_id=3)
        assert too_many["type"] == "error" and "at most 2 subscriptions" in too_many["error"]
        for _ in range(3):
            ws.send_json({"action": "ping"})
            assert receive(ws) == {"type": "pong"}
        ws.send_json({"action": "ping"})  # the bucket is empty
        assert "too many messages" in receive(ws)["error"]
        with pytest.raises(WebSocketDisconnect) as closed:
            for _ in range(5):
                ws.send_json({"action": "ping"})
                receive(ws)
        assert closed.value.code == 1008 and "too many messages" in (closed.value.reason or "")


# -- in a real browser: the widget with a viewer token -----------------------------------------

@pytest.fixture
def viewer_server(sqlite_url: str) -> Iterator[tuple[str, JobQueue]]:
    with served(sqlite_url, token=ADMIN, secret=SECRET) as running:
        yield running


@pytest.mark.browser
def test_the_widget_shows_a_viewers_own_job_live_and_refuses_anothers(
        viewer_server: tuple[str, JobQueue], request: pytest.FixtureRequest) -> None:
    chromium = request.getfixturevalue("browser")
    base, queue = viewer_server
    root = base.removesuffix("/jobs")
    queue.pause_queue("default")  # the job starts once its widget is following it
    others = Wait.set(owner="bob").perform_later(seconds=30)
    mine = Steps.set(owner="alice").perform_later(steps=16, delay=0.15)
    token = viewer_token(SECRET, owner="alice", ttl=600)
    context = chromium.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(20_000)
    mine_widget, other_widget = f"#job-{mine.id}", f"#job-{others.id}"
    try:
        # A page of "your application": no dashboard session, only the viewer token.
        page.goto(f"{root}/my-app?job={mine.id}&job={others.id}&token={token}")
        page.wait_for_function(
            f"() => {{ const w = document.querySelector('{mine_widget}');"
            " return w.getAttribute('status') === 'pending' && w.getAttribute('connection') === 'live'; }")
        queue.resume_queue("default")
        # Live progress of its own job: the bar moves before the job is done.
        page.wait_for_function(
            f"() => {{ const w = document.querySelector('{mine_widget}');"
            " const f = w.shadowRoot && w.shadowRoot.querySelector('.fill');"
            " return w.getAttribute('status') === 'running' && f && parseFloat(f.style.width) > 10"
            " && parseFloat(f.style.width) < 100; }", timeout=30_000)
        page.wait_for_function(f"() => document.querySelector('{mine_widget}').getAttribute('status') === 'completed'",
                               timeout=30_000)
        assert "of 16" in page.locator(mine_widget).evaluate("w => w.shadowRoot.querySelector('.count').textContent")
        # Another owner's job: refused, and it says so.
        page.wait_for_function(f"() => document.querySelector('{other_widget}').getAttribute('status') === 'refused'")
        status = page.locator(other_widget).evaluate("w => w.shadowRoot.querySelector('.status').textContent")
        assert "no job" in status or "forbidden" in status
        # The same token opens no dashboard page.
        assert page.goto(f"{base}/?token={token}").status == 403
        assert not errors, errors
    finally:
        context.close()
        queue.cancel(others.id)
        time.sleep(0.1)
