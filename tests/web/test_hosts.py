"""DNS rebinding: the dashboard answers only the host names it is served as (SQLite only:
no SQL here), in the app and in `activejob dashboard` served by uvicorn."""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import WebSocketDenialResponse

import activejob
from activejob import JobQueue
from activejob.web import create_app
from activejob.web.hosts import dashboard_url, served_hosts

from .conftest import ROOT, TestClient, csrf_headers, receive
from .jobs import Wait


@pytest.fixture
def sq(sqlite_url: str) -> Iterator[JobQueue]:
    q = activejob.configure(sqlite_url, poll_interval=0.05, progress_interval=0.05)
    yield q
    JobQueue.reset()


def test_a_rebound_name_reads_changes_and_listens_to_nothing(sq: JobQueue) -> None:
    handle = Wait.perform_later(seconds=60)
    app = create_app(sq)
    # Only `ours` runs the app's lifespan (a second would start the relay in another loop).
    with TestClient(app) as ours, contextlib.closing(TestClient(app, base_url="http://evil.example:8000")) as evil:
        # The attacker's page, served as evil.example, which now resolves to 127.0.0.1.
        page = evil.get("/", headers={"accept": "text/html"})
        assert page.status_code == 400 and "Invalid Host header 'evil.example'" in page.text
        assert "activejob_csrf" not in page.headers.get("set-cookie", "")
        for path in ("/api/jobs", f"/api/jobs/{handle.id}", "/api/events", f"/jobs/{handle.id}",
                     "/static/dashboard.js"):
            assert evil.get(path).status_code == 400, path
        # Even holding a valid CSRF cookie and token, a change is refused.
        proof = csrf_headers(ours)
        evil.cookies.set("activejob_csrf", proof["X-CSRF-Token"])
        refused = evil.post(f"/api/jobs/{handle.id}/cancel", headers=proof, json={})
        assert refused.status_code == 400
        assert sq.get_job(handle.id).status == "pending"  # type: ignore[union-attr]
        with pytest.raises(WebSocketDenialResponse) as denied, evil.websocket_connect("/api/ws"):
            pass
        assert denied.value.status_code == 400 and "Invalid Host header" in denied.value.text


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:5555", "[::1]:8000", "[::1]",
                                  "LocalHost.:80", "[0:0:0:0:0:0:0:1]:9"])
def test_loopback_names_are_answered_by_default(sq: JobQueue, host: str) -> None:
    with TestClient(create_app(sq)) as client:
        assert client.get("/api/stats", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.evil.example", "localhost.evil.example:80",
                                  "localhost:abc", "[::1", "127.0.0.2", "", "testserver"])
def test_other_or_malformed_hosts_are_refused_by_default(sq: JobQueue, host: str) -> None:
    with TestClient(create_app(sq)) as client:
        response = client.get("/api/stats", headers={"host": host})
        assert response.status_code == 400 and "Invalid Host header" in response.text


def test_allowed_hosts_names_the_hosts_it_is_served_as(sq: JobQueue) -> None:
    app = create_app(sq, allowed_hosts=["jobs.example.com", "*.internal.example", "::1"])
    with TestClient(app, base_url="https://jobs.example.com") as client:
        for host, status in [("jobs.example.com", 200), ("JOBS.example.com:8443", 200), ("a.internal.example", 200),
                             ("b.a.internal.example", 200), ("internal.example", 400), ("[::1]:80", 200),
                             ("localhost", 400), ("evil.example", 400), ("jobs.example.com.evil.example", 400)]:
            assert client.get("/api/stats", headers={"host": host}).status_code == status, host
        with client.websocket_connect("/api/ws") as ws:
            ws.send_json({"action": "ping"})
            assert receive(ws) == {"type": "pong"}
    with TestClient(create_app(sq, allowed_hosts=["*"]), base_url="http://anything.example") as client:
        assert client.get("/api/stats").status_code == 200  # an explicit opt-out, e.g. behind your own check


def test_a_mounted_dashboard_checks_the_host_too(sq: JobQueue) -> None:
    outer = Starlette(routes=[Mount("/admin/jobs", app=create_app(sq, allowed_hosts=["app.example.com"]))])
    with TestClient(outer, base_url="http://app.example.com") as client:
        assert client.get("/admin/jobs/api/stats").status_code == 200
        assert client.get("/admin/jobs/api/stats", headers={"host": "evil.example"}).status_code == 400


@pytest.mark.parametrize("bad", [["example.com:8000"], ["a*.example.com"], ["*example.com"], ["*."], ["*.*"],
                                 ["."], [""], ["*..example.com"], [], "example.com"])
def test_unusable_allowed_hosts_fail_at_creation(sq: JobQueue, bad: list[str]) -> None:
    with pytest.raises((ValueError, TypeError)):
        create_app(sq, allowed_hosts=bad)


# -- the command line, served by uvicorn ----------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def serve(sqlite_url: str) -> Iterator[object]:
    """Start `activejob dashboard ...` on a free port; yields a function of its extra options."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*extra: str) -> int:
        port = _free_port()
        bound = extra[extra.index("--host") + 1] if "--host" in extra else "127.0.0.1"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ACTIVEJOB_")}
        env["PYTHONPATH"] = str(ROOT)
        proc = subprocess.Popen([sys.executable, "-m", "activejob", "dashboard", "--database-url", sqlite_url,
                                 "--port", str(port), *extra], cwd=str(ROOT), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(proc)
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "exited"
            try:
                with socket.create_connection((bound, port), timeout=0.2):
                    return port
            except OSError:
                assert time.monotonic() < deadline, "the dashboard did not start"
                time.sleep(0.1)

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


def _upgrade_status(port: int, host: str, address: str = "127.0.0.1") -> str:
    """The status line uvicorn answers a WebSocket handshake naming `host` with."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /api/ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
    with socket.create_connection((address, port), timeout=10) as s:
        s.sendall(request.encode())
        return s.recv(4096).decode(errors="replace").split("\r\n", 1)[0]


def test_the_dashboard_command_refuses_other_hosts(serve: object, tmp_path: Path) -> None:
    port = serve()  # type: ignore[operator]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
        assert http.get("/api/stats").status_code == 200
        assert http.get("/api/stats", headers={"host": f"localhost:{port}"}).status_code == 200
        refused = http.get("/api/jobs", headers={"host": f"evil.example:{port}"})
        assert refused.status_code == 400 and "Invalid Host header" in refused.text
    assert _upgrade_status(port, f"localhost:{port}").startswith("HTTP/1.1 101")
    assert _upgrade_status(port, f"evil.example:{port}").startswith("HTTP/1.1 400")


def test_the_dashboard_command_takes_allowed_hosts(serve: object) -> None:
    port = serve("--allowed-host", "jobs.example.com", "--allowed-host", "*.corp.example")  # type: ignore[operator]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
        for host, status in [("jobs.example.com", 200), (f"x.corp.example:{port}", 200), ("evil.example", 400)]:
            assert http.get("/api/stats", headers={"host": host}).status_code == status, host
    assert _upgrade_status(port, "jobs.example.com").startswith("HTTP/1.1 101")
    assert _upgrade_status(port, "evil.example").startswith("HTTP/1.1 400")


def test_the_dashboard_command_answers_the_address_it_binds_to(serve: object) -> None:
    port = serve("--host", "127.0.0.2")  # type: ignore[operator]
    with httpx.Client(base_url=f"http://127.0.0.2:{port}") as http:
        assert http.get("/api/stats").status_code == 200
        assert http.get("/api/stats", headers={"host": f"localhost:{port}"}).status_code == 200
        assert http.get("/api/stats", headers={"host": "evil.example"}).status_code == 400
    assert _upgrade_status(port, f"127.0.0.2:{port}", "127.0.0.2").startswith("HTTP/1.1 101")


def test_the_dashboard_command_refuses_a_bad_allowed_host(sqlite_url: str) -> None:
    from click.testing import CliRunner

    from activejob.cli import main

    result = CliRunner().invoke(main, ["dashboard", "--database-url", sqlite_url, "--allowed-host", "a.example:80"])
    assert result.exit_code == 2 and "--allowed-host" in result.output and "without a port" in result.output


# -- the API answers a refused host in JSON ---------------------------------------------------

def test_a_refused_host_gets_a_json_error_under_the_api(sq: JobQueue) -> None:
    outer = Starlette(routes=[Mount("/admin/jobs", app=create_app(sq, allowed_hosts=["app.example.com"]))])
    with TestClient(create_app(sq)) as alone, TestClient(outer, base_url="http://app.example.com") as mounted:
        for client, base in ((alone, ""), (mounted, "/admin/jobs")):
            refused = client.get(f"{base}/api/stats", headers={"host": "evil.example"})
            assert refused.status_code == 400 and refused.headers["content-type"] == "application/json"
            assert refused.json()["error"].startswith("Invalid Host header 'evil.example'")
            page = client.get(f"{base}/queues", headers={"host": "evil.example"})  # the pages: plain text
            assert page.status_code == 400 and page.text.startswith("Invalid Host header 'evil.example'")


# -- the hosts `activejob dashboard` answers, and the URL it prints ---------------------------

@pytest.mark.parametrize(("bound", "allowed", "answered", "refused"), [
    ("192.0.2.2", ["jobs.example.com"], ["192.0.2.2", "jobs.example.com:443"], ["localhost", "evil.example"]),
    ("127.0.0.2", ["jobs.example.com"], ["127.0.0.2:8000", "localhost", "127.0.0.1", "[::1]", "jobs.example.com"],
     ["evil.example"]),
    ("127.0.0.2", [], ["127.0.0.2", "localhost"], ["jobs.example.com"]),
    ("::1", ["jobs.example.com"], ["[::1]:8000", "localhost", "jobs.example.com"], ["evil.example"]),
    ("0.0.0.0", ["jobs.example.com"], ["localhost:8000", "jobs.example.com"], ["0.0.0.0", "evil.example"]),
    ("2001:db8::5", [], ["[2001:db8::5]", "[2001:DB8:0::5]:80"], ["localhost"]),
])
def test_allowed_hosts_always_include_the_bound_address(sq: JobQueue, bound: str, allowed: list[str],
                                                        answered: list[str], refused: list[str]) -> None:
    with TestClient(create_app(sq, allowed_hosts=served_hosts(bound, allowed))) as client:
        for host in answered:
            assert client.get("/api/stats", headers={"host": host}).status_code == 200, host
        for host in refused:
            assert client.get("/api/stats", headers={"host": host}).status_code == 400, host


@pytest.mark.parametrize(("bound", "url"), [
    ("127.0.0.1", "http://localhost:8000/"), ("localhost", "http://localhost:8000/"),
    ("127.0.0.2", "http://127.0.0.2:8000/"), ("::1", "http://[::1]:8000/"), ("0.0.0.0", "http://localhost:8000/"),
    ("192.0.2.2", "http://192.0.2.2:8000/"), ("2001:db8::5", "http://[2001:db8::5]:8000/"),
])
def test_the_printed_url_names_an_address_that_answers(bound: str, url: str) -> None:
    assert dashboard_url(bound, 8000) == url
    assert dashboard_url(bound, 8000, "/jobs") == url + "jobs/"


def test_the_printed_url_reaches_a_dashboard_bound_to_another_loopback_address(serve: object) -> None:
    port = serve("--host", "127.0.0.2")  # type: ignore[operator]
    with httpx.Client() as http:
        assert http.get(dashboard_url("127.0.0.2", port) + "api/stats").status_code == 200


def test_the_dashboard_command_answers_its_bound_address_beside_allowed_hosts(serve: object) -> None:
    port = serve("--host", "127.0.0.2", "--allowed-host", "jobs.example.com")  # type: ignore[operator]
    with httpx.Client(base_url=f"http://127.0.0.2:{port}") as http:
        assert http.get("/api/stats", headers={"host": "jobs.example.com"}).status_code == 200
        assert http.get("/api/stats").status_code == 200  # Host: 127.0.0.2:PORT
        assert http.get("/api/stats", headers={"host": f"localhost:{port}"}).status_code == 200
        assert http.get("/api/stats", headers={"host": "evil.example"}).status_code == 400


def test_the_dashboard_command_prints_the_loopback_address_it_binds(sqlite_url: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn
    from click.testing import CliRunner

    from activejob.cli import main

    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)  # print the URL, serve nothing
    result = CliRunner().invoke(main, ["dashboard", "--database-url", sqlite_url, "--host", "127.0.0.2",
                                       "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.2:8123/" in result.output
