"""What the REST API refuses rather than guess (SQLite file and PostgreSQL): body fields and
query parameters it does not take, bodies not sent as JSON, methods a path does not take;
its errors, all JSON; the pages' plain forms on routes of their own; and the docs and the
OpenAPI description, in step with the endpoints."""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest

from activejob import Batch, JobQueue
from activejob.web import create_app

from .conftest import ROOT, TestClient, csrf_headers
from .jobs import Fail, Quick, Wait

API_CLIENT = {"Authorization": "Bearer x"}  # no token on these apps: the header only spares the CSRF proof
CURL_D = {**API_CLIENT, "content-type": "application/x-www-form-urlencoded"}  # what `curl -d` sends

# Every change endpoint (with a body it accepts); {job} and {batch} are filled in per test.
CHANGES = [
    ("/api/jobs/{job}/cancel", {"expected_status": "pending"}),
    ("/api/jobs/{job}/retry", {"expected_status": "failed"}),
    ("/api/jobs/{job}/delete", {"expected_status": "completed"}),
    ("/api/jobs/retry-failed", {"name": "web_fail"}),
    ("/api/jobs/cancel", {"ids": ["{job}"]}),
    ("/api/jobs/delete", {"ids": ["{job}"]}),
    ("/api/queues/default/pause", {}),
    ("/api/queues/default/resume", {}),
    ("/api/batches/{batch}/cancel", {}),
]


def _untouched(queue: JobQueue) -> tuple[int, int, int]:
    """A failed job, and a pending one in an unfinished batch (no worker runs here), to check
    that nothing changed them."""
    failed = Fail.perform_later(message="kaput")
    queue.run_until_idle()
    with Batch() as batch:
        pending = Wait.perform_later(seconds=60)
    return pending.id, failed.id, batch.id


def _fill(path: str, body: dict[str, Any], job: int, batch: int) -> tuple[str, dict[str, Any]]:
    filled = {k: [job] if v == ["{job}"] else v for k, v in body.items()}
    return path.format(job=job, batch=batch), filled


def _assert_unchanged(queue: JobQueue, pending: int, failed: int, batch: int) -> None:
    assert queue.get_job(pending).status == "pending"  # type: ignore[union-attr]
    assert queue.get_job(failed).status == "failed"  # type: ignore[union-attr]
    assert queue.get_batch(batch).finished is False  # type: ignore[union-attr]
    assert queue.paused_queues() == []


# -- 1. unknown body fields --------------------------------------------------------------

def test_retry_failed_refuses_a_misspelt_filter_and_retries_nothing(queue: JobQueue, client: TestClient) -> None:
    broken = [Fail.perform_later(message="kaput") for _ in range(2)]
    queue.run_until_idle()
    answer = client.post("/api/jobs/retry-failed", json={"nmae": "web_quick"}, headers=API_CLIENT)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert "'nmae'" in error and "name, queue, owner, q" in error, error
    assert [queue.get_job(h.id).status for h in broken] == ["failed", "failed"]  # type: ignore[union-attr]


@pytest.mark.parametrize(("path", "body"), CHANGES, ids=[p for p, _ in CHANGES])
def test_every_change_endpoint_refuses_an_unknown_body_field(queue: JobQueue, client: TestClient, path: str,
                                                             body: dict[str, Any]) -> None:
    pending, failed, batch = _untouched(queue)
    url, fields = _fill(path, body, pending if "retry" not in path else failed, batch)
    answer = client.post(url, json={**fields, "expected_stauts": "pending"}, headers=API_CLIENT)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error.startswith("unknown body field 'expected_stauts'; this endpoint takes: "), error
    assert all(name in error for name in fields), error  # the fields it does take are named
    _assert_unchanged(queue, pending, failed, batch)


def test_the_pages_forms_refuse_an_unknown_field_too(queue: JobQueue, client: TestClient) -> None:
    handle = Wait.perform_later(seconds=60)
    token = csrf_headers(client)["X-CSRF-Token"]
    answer = client.post(f"/jobs/{handle.id}/cancel", data={"csrf_token": token, "expected": "running"},
                         follow_redirects=False)
    assert answer.status_code == 400 and "'expected'" in answer.json()["error"]
    assert queue.get_job(handle.id).status == "pending"  # type: ignore[union-attr]


# -- 2. bodies that are not JSON -----------------------------------------------------------

def test_a_json_body_sent_as_a_form_is_refused_and_keeps_its_guard(queue: JobQueue, client: TestClient) -> None:
    handle = Wait.perform_later(seconds=60)
    for text in ('{"expected_status":"running"}', '{"expected_status":"bogus"}'):
        answer = client.post(f"/api/jobs/{handle.id}/cancel", content=text, headers=CURL_D, follow_redirects=False)
        assert answer.status_code == 415, (text, answer.status_code, answer.text)
        assert "Content-Type: application/json" in answer.json()["error"]
        assert answer.headers["accept-post"] == "application/json"
    assert queue.get_job(handle.id).status == "pending"  # type: ignore[union-attr]
    # As JSON, the guard holds: the job is pending, not running.
    as_json = client.post(f"/api/jobs/{handle.id}/cancel", json={"expected_status": "running"}, headers=API_CLIENT)
    assert as_json.status_code == 409


def test_a_form_posted_to_the_api_is_read_as_the_pages_forms_are(queue: JobQueue, client: TestClient) -> None:
    handle = Wait.perform_later(seconds=60)
    answer = client.post(f"/api/jobs/{handle.id}/cancel", data={"expected_status": "pending"}, headers=API_CLIENT,
                         follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == f"/jobs/{handle.id}"
    assert queue.get_job(handle.id).status == "cancelled"  # type: ignore[union-attr]
    other = Wait.perform_later(seconds=60)
    refused = client.post(f"/api/jobs/{other.id}/cancel", data={"expected_status": "running", "nmae": "x"},
                          headers=API_CLIENT, follow_redirects=False)
    assert refused.status_code == 400 and "unknown body field 'nmae'" in refused.json()["error"]
    assert queue.get_job(other.id).status == "pending"  # type: ignore[union-attr]


@pytest.mark.parametrize(("path", "body"), CHANGES, ids=[p for p, _ in CHANGES])
@pytest.mark.parametrize("kind", ["text/plain", None])
def test_every_change_endpoint_takes_only_a_json_body(queue: JobQueue, client: TestClient, path: str,
                                                      body: dict[str, Any], kind: str | None) -> None:
    pending, failed, batch = _untouched(queue)
    url, fields = _fill(path, body, pending if "retry" not in path else failed, batch)
    text = "&".join(f"{k}={v}" for k, v in fields.items()) or "csrf_token=x"
    headers = {**API_CLIENT, **({"content-type": kind} if kind else {})}
    answer = client.post(url, content=text, headers=headers, follow_redirects=False)
    assert answer.status_code == 415, answer.text
    assert "Content-Type: application/json" in answer.json()["error"]
    _assert_unchanged(queue, pending, failed, batch)


def test_an_empty_body_needs_no_content_type(queue: JobQueue, client: TestClient) -> None:
    # `curl -X POST -d ''` (a form type, nothing in it) is a call without a body.
    answer = client.post("/api/queues/mail/pause", content=b"", headers=CURL_D)
    assert answer.status_code == 200 and answer.json()["changed"] is True


def test_the_pages_forms_post_to_their_own_routes_and_are_redirected(queue: JobQueue, client: TestClient) -> None:
    handle = Wait.perform_later(seconds=60)
    with Batch() as batch:
        Wait.perform_later(seconds=60)
    page = client.get(f"/jobs/{handle.id}", headers={"accept": "text/html"}).text
    assert f'action="/jobs/{handle.id}/cancel" data-api="/api/jobs/{handle.id}/cancel"' in page
    assert f'action="/batches/{batch.id}/cancel"' in client.get(f"/batches/{batch.id}").text
    token = client.cookies.get("activejob_csrf")
    form = client.post(f"/jobs/{handle.id}/cancel", data={"csrf_token": token, "expected_status": "pending"},
                       follow_redirects=False)
    assert form.status_code == 303 and form.headers["location"] == f"/jobs/{handle.id}"
    assert queue.get_job(handle.id).status == "cancelled"  # type: ignore[union-attr]
    form = client.post(f"/batches/{batch.id}/cancel", data={"csrf_token": token}, follow_redirects=False)
    assert form.status_code == 303 and form.headers["location"] == f"/batches/{batch.id}"
    assert queue.get_batch(batch.id).finished is True  # type: ignore[union-attr]
    # Those routes take the form; JSON goes to the API.
    other = Wait.perform_later(seconds=60)
    refused = client.post(f"/jobs/{other.id}/cancel", json={"expected_status": "pending"}, headers=API_CLIENT)
    assert refused.status_code == 415 and "/api" in refused.json()["error"]
    assert queue.get_job(other.id).status == "pending"  # type: ignore[union-attr]


# -- 5. limits and unknown query parameters ------------------------------------------------

@pytest.mark.parametrize(("path", "most"), [("/api/jobs", 200), ("/api/batches", 500), ("/api/events", 1000)])
def test_a_limit_out_of_range_is_a_400_on_every_list(client: TestClient, path: str, most: int) -> None:
    for limit in ("0", "-1", "100000"):
        answer = client.get(path, params={"limit": limit})
        assert answer.status_code == 400, (limit, answer.text)
        assert answer.json() == {"error": f"limit must be between 1 and {most}"}
    assert client.get(path, params={"limit": "x"}).json() == {"error": "limit must be a whole number"}
    assert client.get(path, params={"limit": str(most)}).status_code == 200


def test_an_unknown_filter_is_refused_not_ignored(queue: JobQueue, client: TestClient) -> None:
    Fail.perform_later(message="kaput")
    Quick.perform_later(value=1)
    queue.run_until_idle()
    answer = client.get("/api/jobs", params={"stauts": "failed"})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error.startswith("unknown query parameter 'stauts'; this endpoint takes: status, name, queue"), error
    assert [j["status"] for j in client.get("/api/jobs", params={"status": "failed"}).json()["jobs"]] == ["failed"]


@pytest.mark.parametrize("path", ["/api/jobs", "/api/jobs/{job}", "/api/jobs/{job}/events", "/api/jobs/{job}/explain",
                                  "/api/events", "/api/batches", "/api/batches/{batch}", "/api/batches/{batch}/events",
                                  "/api/stats", "/api/workers", "/api/job-types", "/api/schedules", "/api/activity"])
def test_every_read_refuses_an_unknown_query_parameter(queue: JobQueue, client: TestClient, path: str) -> None:
    with Batch() as batch:
        handle = Quick.perform_later(value=1)
    url = path.format(job=handle.id, batch=batch.id)
    assert client.get(url, params={"token": "anything"}).status_code == 200  # ?token= is always taken
    answer = client.get(url, params={"bogus": "1", "page": "2"})
    assert answer.status_code == 400 and answer.json()["error"].startswith(
        "unknown query parameters 'bogus', 'page'; this endpoint takes: "), answer.text


def test_a_change_refuses_an_unknown_query_parameter(queue: JobQueue, client: TestClient) -> None:
    answer = client.post("/api/queues/mail/pause?force=1", headers=API_CLIENT)
    assert answer.status_code == 400 and "'force'" in answer.json()["error"]
    assert queue.paused_queues() == []


# -- 6. every API error is JSON -------------------------------------------------------------

def test_a_wrong_method_on_the_api_is_a_json_405_with_allow(queue: JobQueue, client: TestClient) -> None:
    handle = Quick.perform_later(value=1)
    for method, path, allow in (("GET", f"/api/jobs/{handle.id}/cancel", "POST"), ("POST", "/api/jobs", "GET, HEAD"),
                                ("DELETE", f"/api/jobs/{handle.id}", "GET, HEAD"),
                                ("GET", "/api/queues/mail/pause", "POST")):
        answer = client.request(method, path, headers=API_CLIENT)
        assert answer.status_code == 405, (method, path)
        assert answer.headers["allow"] == allow
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == {"error": f"method {method} is not allowed here; this path takes {allow}"}
    page = client.post("/queues")  # the pages answer as before
    assert page.status_code == 405 and page.text == "Method Not Allowed"
    assert set(page.headers["allow"].split(", ")) == {"GET", "HEAD"}


def test_a_crash_under_the_api_is_a_json_500(queue: JobQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(queue, "stats", broken)
    with TestClient(create_app(queue), raise_server_exceptions=False) as client:
        answer = client.get("/api/stats")
        assert answer.status_code == 500 and answer.json() == {"error": "internal server error"}
        assert "went away" not in answer.text  # nothing of the exception leaks
        page = client.get("/queues", headers={"accept": "text/html"})
        assert page.status_code == 500 and page.text == "Internal Server Error"


# -- 7. the OpenAPI description and the docs ---------------------------------------------

def test_the_api_description_says_what_each_endpoint_takes(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody")
            if method == "post":
                assert body is not None, path
                assert set(body["content"]) == {"application/json"}, path  # JSON only: no form
                schema = schemas[body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]]
                assert schema["additionalProperties"] is False, path
                assert "415" in operation["responses"], path
            assert "400" in operation["responses"], path
    batch_limit = next(p for p in spec["paths"]["/api/batches"]["get"]["parameters"] if p["name"] == "limit")
    assert batch_limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 500}


def _docs() -> str:
    return (ROOT / "docs" / "dashboard.md").read_text()


def test_the_docs_list_every_endpoint_of_the_api_description(client: TestClient) -> None:
    table = _docs().split("## REST API", 1)[1].split("## WebSocket protocol", 1)[0]
    listed = set(re.findall(r"^\| `(GET|POST) (/api/[^`?]*)", table, re.M))
    described = {(method.upper(), re.sub(r"\{(job|batch)_id\}", "{id}", path))
                 for path, operations in client.get("/api/openapi.json").json()["paths"].items()
                 for method in operations}
    assert described - listed == set(), "endpoints missing from the table in docs/dashboard.md"
    assert listed - described == set(), "endpoints in docs/dashboard.md that the API does not have"


def test_the_docs_list_every_page() -> None:
    pages = _docs().split("## The pages", 1)[1].split("### Charts", 1)[0]
    for path in ("/", "/jobs/{id}", "/queues", "/batches", "/batches/{id}", "/schedules"):
        assert f"(`{path}`" in pages, path


def test_the_docs_give_create_apps_signature() -> None:
    def shown(parameter: inspect.Parameter) -> str:
        default = parameter.default
        text = f'"{default}"' if isinstance(default, str) else repr(default)
        return parameter.name if default is inspect.Parameter.empty else f"{parameter.name}={text}"

    parameters = list(inspect.signature(create_app).parameters.values())
    keywords = [p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]
    positional = [p for p in parameters if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    signature = f"create_app({', '.join([*map(shown, positional), '*', *map(shown, keywords)])})"
    assert signature in " ".join(_docs().replace("`", " ").split()), signature
