"""Token, authorize hook, escaping, mounting inside another app (SQLite only: no SQL here)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from markupsafe import escape
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import HTTPConnection
from starlette.routing import Mount
from starlette.websockets import WebSocketDisconnect

import activejob
from activejob import BaseJob, JobQueue, job
from activejob.web import create_app

from .conftest import TestClient, receive
from .jobs import Fail, Quick

TOKEN = "s3cret-token-for-tests"


@pytest.fixture
def sq(sqlite_url: str) -> Iterator[JobQueue]:
    q = activejob.configure(sqlite_url, poll_interval=0.05, progress_interval=0.05)
    yield q
    JobQueue.reset()


def test_token_guards_pages_api_and_websocket(sq: JobQueue) -> None:
    with TestClient(create_app(sq, token=TOKEN)) as client:
        assert client.get("/api/jobs").status_code == 401
        assert client.get("/", headers={"accept": "text/html"}).status_code == 401
        assert client.get("/api/jobs", headers={"authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/jobs", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert client.get("/static/dashboard.css").status_code == 200  # assets hold no data
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/api/ws"):
            pass
        assert refused.value.code == 4401
        # A person opens the link with the token once: a session cookie, and the token leaves the URL.
        first = client.get(f"/?token={TOKEN}&status=failed", headers={"accept": "text/html"}, follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/?status=failed"
        assert TOKEN not in first.headers["set-cookie"]
        assert client.get("/", headers={"accept": "text/html"}).status_code == 200
        assert client.get("/api/stats").status_code == 200
        with client.websocket_connect("/api/ws") as ws:
            ws.send_json({"action": "ping"})
            assert receive(ws) == {"type": "pong"}


def test_authorize_hook(sq: JobQueue) -> None:
    seen: list[str] = []

    async def authorize(conn: HTTPConnection) -> bool:
        seen.append(conn.url.path)
        return conn.headers.get("x-user") == "admin"

    with TestClient(create_app(sq, authorize=authorize)) as client:
        assert client.get("/api/jobs").status_code == 403
        assert client.get("/api/jobs", headers={"x-user": "admin"}).status_code == 200
        assert client.get("/queues", headers={"x-user": "eve", "accept": "text/html"}).status_code == 403
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/api/ws"):
            pass
        assert refused.value.code == 4403
        with client.websocket_connect("/api/ws", headers={"x-user": "admin"}) as ws:
            ws.send_json({"action": "ping"})
            assert receive(ws)["type"] == "pong"
    assert "/api/ws" in seen


def test_user_data_is_never_rendered_unescaped(sq: JobQueue) -> None:
    evil = "<script>alert('x')</script>"
    handle = Fail.set(owner=evil).perform_later(message=evil)
    other = Quick.perform_later(value={"html": evil})
    sq.run_until_idle()
    with TestClient(create_app(sq)) as client:
        pages = [client.get(path, headers={"accept": "text/html"}).text
                 for path in ("/", f"/jobs/{handle.id}", f"/jobs/{other.id}", "/queues", f"/?q={evil}",
                              f"/?owner={evil}", f"/jobs/{handle.id}?fragment=1")]
        for page in pages:
            assert "<script>alert" not in page
        assert "&lt;script&gt;alert(" in pages[1]
        response = client.get("/")
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert "<script>" not in response.text.replace('<script src="/static/dashboard.js', "")


def test_mounted_inside_another_app(sq: JobQueue) -> None:
    handle = Quick.perform_later(value=1)
    sq.run_until_idle()
    outer = Starlette(routes=[Mount("/admin/jobs", app=create_app(sq))])
    with TestClient(outer) as client:
        page = client.get(f"/admin/jobs/jobs/{handle.id}", headers={"accept": "text/html"})
        assert page.status_code == 200
        assert 'data-base="/admin/jobs"' in page.text and 'href="/admin/jobs/static/dashboard.css' in page.text
        assert client.get("/admin/jobs/api/jobs").json()["jobs"][0]["id"] == handle.id
        assert client.get("/admin/jobs/static/activejob-progress.js").status_code == 200
        assert client.get("/admin/jobs/api/nope").status_code == 404
        with client.websocket_connect("/admin/jobs/api/ws") as ws:  # the relay starts on first use
            ws.send_json({"action": "subscribe", "job_id": handle.id, "since": 0})
            assert receive(ws)["type"] == "subscribed"
            assert receive(ws)["event"] == "enqueued"


class LinkArgs(BaseModel):
    url: str


def _linked_job() -> type[BaseJob[LinkArgs]]:
    """A job type whose resource link comes straight from its arguments, i.e. from users."""
    @job("web_linked", schema=LinkArgs, max_retries=0, resource_link=lambda args: args["url"])
    class Linked(BaseJob[LinkArgs]):
        def perform(self, args: LinkArgs) -> None:
            return None

    return Linked


@pytest.mark.parametrize("link", [
    "/\\evil.example/x", "//evil.example/x", "/\t/evil.example/x", " //evil.example/x", "\\\\evil.example/x",
    "javascript:alert(1)", "https:evil.example", "http:/evil.example", "datasets/relative",
])
def test_a_resource_link_to_another_site_is_not_a_link(sq: JobQueue, link: str) -> None:
    handle = _linked_job().perform_later(url=link)
    with TestClient(create_app(sq)) as client:
        assert client.get(f"/api/jobs/{handle.id}").json()["job"]["resource_link"] is None
        page = client.get(f"/jobs/{handle.id}", headers={"accept": "text/html"}).text
        assert 'rel-kind">Resource' not in page and f'href="{escape(link)}"' not in page


@pytest.mark.parametrize("link", ["/datasets/d1?x=1#top", "https://example.com/reports/7", "http://intranet/x"])
def test_a_same_site_path_or_http_url_is_a_link(sq: JobQueue, link: str) -> None:
    handle = _linked_job().perform_later(url=link)
    with TestClient(create_app(sq)) as client:
        assert client.get(f"/api/jobs/{handle.id}").json()["job"]["resource_link"] == link
        page = client.get(f"/jobs/{handle.id}", headers={"accept": "text/html"}).text
        assert f'<span class="rel-kind">Resource</span><a href="{escape(link)}" rel="noopener">' in page


def test_a_token_in_the_url_reads_and_listens_but_a_change_needs_the_header(sq: JobQueue) -> None:
    handle = Quick.perform_later(value=1)
    with TestClient(create_app(sq, token=TOKEN)) as client:
        assert client.get(f"/api/jobs/{handle.id}?token={TOKEN}").status_code == 200
        with client.websocket_connect(f"/api/ws?token={TOKEN}") as ws:
            ws.send_json({"action": "ping"})
            assert receive(ws) == {"type": "pong"}
        refused = client.post(f"/api/jobs/{handle.id}/cancel?token={TOKEN}", json={"expected_status": "pending"})
        assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
        assert sq.get_job(handle.id).status == "pending"  # type: ignore[union-attr]
        # With the page's CSRF proof (its cookie and header), the same call is a change.
        client.get(f"/?token={TOKEN}", headers={"accept": "text/html"})  # the session cookie, then a page
        proof = {"X-CSRF-Token": client.cookies.get("activejob_csrf") or ""}
        assert client.post(f"/api/jobs/{handle.id}/cancel?token={TOKEN}", json={}, headers=proof).status_code == 200
        other = Quick.perform_later(value=2)
        ok = client.post(f"/api/jobs/{other.id}/cancel", json={}, headers={"authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
