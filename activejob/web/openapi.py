"""The REST API's OpenAPI 3.1 description: each endpoint carries its operation (`doc`),
and `openapi_schema` gathers them with the shared components.

The description is also what the endpoints accept: `doc` works out from it the query
parameters and body fields of each (`Accepted`), and the API refuses any other with a 400
(api_base.py, api_changes.py), so what is documented and what is read cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..explain import REASONS
from ..records import STATUSES
from ..signals import BY_EVENT, INTERNAL_EVENTS

Handler = Callable[[Request], Awaitable[Response]]

STATUS_ENUM = {"type": "string", "enum": list(STATUSES)}
EVENT_ENUM = {"type": "string", "enum": sorted(set(BY_EVENT) - INTERNAL_EVENTS)}


def param(name: str, schema: dict[str, Any], description: str, *, where: str = "query",
       required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema,
            "description": description}


JOB_ID = param("job_id", {"type": "integer"}, "The job's id.", where="path")
QUEUE_NAME = param("name", {"type": "string", "minLength": 1, "maxLength": 200}, "The queue's name.", where="path")
SCHEDULE_KEY = param("key", {"type": "string", "minLength": 1}, "The cron schedule's key.", where="path")

def _json_body(schema: str, *, required: bool = False) -> dict[str, Any]:
    """A request body: a JSON object of the named schema (the API takes no other content type)."""
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
    return {"required": required, "content": content}


EXPECTED_BODY = _json_body("Expectation")
IDS_BODY = _json_body("JobIds", required=True)
FAILED_BODY = _json_body("FailedFilter")
CSRF_BODY = _json_body("CSRFProof")

# Accepted on every endpoint beside its own parameters: the token, as `?token=` (security.py).
ALWAYS_ACCEPTED = ("token",)


@dataclass(frozen=True)
class Accepted:
    """What an endpoint reads, from its OpenAPI operation: its query parameters (beside
    ALWAYS_ACCEPTED) and, if it takes a body, the fields of that JSON object (else None)."""

    query: tuple[str, ...] = ALWAYS_ACCEPTED
    body: tuple[str, ...] | None = None


def accepted(operation: dict[str, Any]) -> Accepted:
    query = tuple(p["name"] for p in operation.get("parameters", ()) if p["in"] == "query")
    body = None
    if "requestBody" in operation:
        ref: str = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        body = tuple(COMPONENTS["schemas"][ref.rsplit("/", 1)[-1]]["properties"])
    return Accepted(query=(*query, *ALWAYS_ACCEPTED), body=body)


_ERROR_TEXTS = {
    400: "A filter, field or queue name is not allowed, or a query parameter or body field is not one this "
         "endpoint takes (the error names it and those it takes).",
    401: "No or wrong token.",
    403: "Forbidden (hook, CSRF, or beyond a viewer token's scope).",
    404: "No such job.",
    409: "The job is not in the expected state; nothing changed.",
    415: "A body that is not sent as `Content-Type: application/json`; nothing changed.",
}


def doc(summary: str, *, parameters: list[dict[str, Any]] | None = None, body: dict[str, Any] | None = None,
        response: str | None = None, errors: tuple[int, ...] = ()) -> Callable[[Handler], Handler]:
    """Attach the OpenAPI operation of an endpoint to it (`fn.openapi`), and what it
    accepts (`fn.accepted`: the API refuses other query parameters and body fields)."""
    def wrap(fn: Handler) -> Handler:
        responses: dict[str, Any] = {"200": {"description": "OK"}}
        if response:
            responses["200"]["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{response}"}}}
        for code in (400, 401, 403, *errors, *((415,) if body else ())):
            responses[str(code)] = {"description": _ERROR_TEXTS[code],
                                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        operation: dict[str, Any] = {"summary": summary, "operationId": fn.__name__, "responses": responses}
        if fn.__doc__:
            operation["description"] = " ".join(fn.__doc__.split())
        if parameters:
            operation["parameters"] = parameters
        if body:
            operation["requestBody"] = body
        fn.openapi = operation  # type: ignore[attr-defined]
        fn.accepted = accepted(operation)  # type: ignore[attr-defined]
        return fn
    return wrap


_OBJ = {"type": "object"}
COMPONENTS: dict[str, Any] = {
    "schemas": {
        "Error": {"type": "object", "properties": {"error": {"type": "string"}, "job": _OBJ}},
        "Expectation": {"type": "object", "additionalProperties": False, "properties": {
            "expected_status": {**STATUS_ENUM, "description": "Act only if the job is still in this status."},
            "csrf_token": {"type": "string", "description": "Browsers: the CSRF token (or the X-CSRF-Token header)."},
        }},
        "CSRFProof": {"type": "object", "additionalProperties": False, "properties": {
            "csrf_token": {"type": "string", "description": "Browsers: the CSRF token (or the X-CSRF-Token header)."},
        }},
        "QueueState": {"type": "object", "properties": {
            "queue": {"type": "string"}, "paused": {"type": "boolean", "description": "Whether it is paused now."},
            "changed": {"type": "boolean", "description": "False if it already was in that state."}}},
        "Job": {"type": "object", "properties": {
            "id": {"type": "integer"}, "name": {"type": "string"}, "label": {"type": "string"},
            "queue": {"type": "string"}, "priority": {"type": "integer"}, "status": STATUS_ENUM,
            "args": {}, "result": {}, "error": {"type": ["string", "null"]},
            "traceback": {"type": ["string", "null"]}, "attempts": {"type": "integer"},
            "max_retries": {"type": "integer"}, "run_at": {"type": "string", "format": "date-time"},
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": {"type": ["string", "null"], "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
            "duration": {"type": ["number", "null"]}, "worker_id": {"type": ["string", "null"]},
            "progress": {"type": ["number", "null"]}, "progress_message": {"type": ["string", "null"]},
            "progress_phase": {"type": ["string", "null"]}, "progress_current": {"type": ["integer", "null"]},
            "progress_total": {"type": ["integer", "null"]}, "phases": {"type": "array", "items": {"type": "string"}},
            "parent_id": {"type": ["integer", "null"]}, "owner": {"type": ["string", "null"]},
            "unique_key": {"type": ["string", "null"]}, "concurrency_key": {"type": ["string", "null"]},
            "unique_until": {"type": ["string", "null"], "enum": ["started", "time", "expired", None]},
            "unique_expires_at": {"type": ["string", "null"], "format": "date-time"},
            "resource_link": {"type": ["string", "null"]}, "finished": {"type": "boolean"},
            "actions": {"type": "array", "items": {"type": "string", "enum": ["cancel", "retry", "delete"]}},
        }},
        "Event": {"type": "object", "properties": {
            "id": {"type": "integer"}, "cursor": {"type": "integer"},
            "event": EVENT_ENUM,
            "job_id": {"type": "integer"}, "name": {"type": "string"}, "queue": {"type": "string"},
            "owner": {"type": ["string", "null"]}, "status": STATUS_ENUM, "attempt": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"}, "data": _OBJ,
        }},
        "JobList": {"type": "object", "properties": {
            "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
            "limit": {"type": "integer"}, "offset": {"type": "integer"}, "has_more": {"type": "boolean"},
            "next_offset": {"type": ["integer", "null"]}}},
        "JobDetail": {"type": "object", "properties": {
            "job": {"$ref": "#/components/schemas/Job"},
            "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
            "children": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}}}},
        "JobResult": {"type": "object", "properties": {"job": {"$ref": "#/components/schemas/Job"}}},
        "Explanation": {"type": "object", "properties": {
            "reason": {"type": "string", "enum": list(REASONS)},
            "message": {"type": "string", "description": "For people: the job, its queue, the times, what to do."},
            "details": {**_OBJ, "description": "The facts behind the reason (job_id, queue, run_at, ...)."}}},
        "EventList": {"type": "object", "properties": {
            "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
            "cursor": {"type": "integer"}, "has_more": {"type": "boolean"}}},
        "Stats": {"type": "object", "additionalProperties": True, "properties": {
            "paused_queues": {"type": "array", "items": {"type": "string"},
                              "description": "Names of the paused queues, sorted."},
            "queue_rate_limits": {"type": "object", "additionalProperties": {"type": "array", "items": {
                "type": "string"}}, "description": "Per limited queue, the limits live workers keep "
                                                   "(\"100/m\"), the strictest first."}}},
        "WorkerList": {"type": "object", "properties": {"workers": {"type": "array", "items": {
            "type": "object", "properties": {
                "id": {"type": "string"}, "host": {"type": "string"}, "pid": {"type": "integer"},
                "queues": {"type": ["array", "null"], "items": {"type": "string"}},
                "job_types": {"type": "array", "items": {"type": "string"}}, "concurrency": {"type": "integer"},
                "started_at": {"type": "string", "format": "date-time"},
                "heartbeat_at": {"type": "string", "format": "date-time"},
                "queue_rate_limits": {"type": "object", "additionalProperties": {"type": "string"},
                                      "description": "The queue rate limits it keeps (\"mail\": \"100/m\")."}}}}}},
        "JobTypeList": {"type": "object", "properties": {"job_types": {"type": "array", "items": _OBJ}}},
        "ScheduleList": {"type": "object", "properties": {"schedules": {"type": "array", "items": {
            "type": "object", "properties": {
                "key": {"type": "string"}, "job": {"type": "string"}, "cron": {"type": "string"},
                "timezone": {"type": "string"}, "args": _OBJ,
                "catch_up": {"type": "string", "enum": ["none", "latest", "all"]},
                "queue": {"type": ["string", "null"]}, "priority": {"type": ["integer", "null"]},
                "source": {"type": "string", "enum": ["code", "settings"]},
                "next_run": {"type": "string", "format": "date-time"},
                "last_enqueued": {"type": ["string", "null"], "format": "date-time",
                                  "description": "The latest slot enqueued (its job may be pruned since)."},
                "last_job_id": {"type": ["integer", "null"]},
                "last_status": {"type": ["string", "null"], "enum": [*STATUSES, None]},
                "error": {"type": ["string", "null"], "description": "Why a declared schedule cannot run here."},
            }}}}},
        "Activity": {"type": "object", "description": "The last hour, minute by minute, from the event log.",
                     "properties": {
            "now": {"type": "string", "format": "date-time"},
            "minutes": {"type": "array", "items": {"type": "string", "format": "date-time"},
                        "description": "The start of each minute; the last is the current one."},
            "finished": {"type": "object", "description": "completed / failed / cancelled events in each minute.",
                         "additionalProperties": {"type": "array", "items": {"type": "integer"}}},
            "queues": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                "depth": {"type": "array", "items": {"type": "integer"},
                          "description": "Pending jobs at the end of each minute."},
                "oldest_age": {"type": "array", "items": {"type": "number"},
                               "description": "Seconds the longest-waiting due job had waited then."}}}}}},
        "JobIds": {"type": "object", "additionalProperties": False, "required": ["ids"], "properties": {
            "ids": {"type": "array", "items": {"type": "integer"}, "maxItems": 1000},
            "csrf_token": {"type": "string"}}},
        "FailedFilter": {"type": "object", "additionalProperties": False, "properties": {
            "name": {"type": "string"}, "queue": {"type": "string"}, "owner": {"type": "string"},
            "q": {"type": "string", "maxLength": 200, "description": "Text search, as the job list's."},
            "search": {"type": "string", "maxLength": 200, "description": "The same as q."},
            "csrf_token": {"type": "string"}}},
        "BulkResult": {"type": "object", "properties": {
            "retried": {"type": "integer"}, "cancelled": {"type": "integer"}, "deleted": {"type": "integer"},
            "skipped": {"type": "integer", "description": "Ids left alone: missing, or not in a state for it."}}},
    },
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
}


def openapi_schema(routes: list[BaseRoute], *, title: str, version: str, prefix: str = "") -> dict[str, Any]:
    """OpenAPI 3.1 from the operations attached to the endpoints by `doc(...)`."""
    paths: dict[str, Any] = {}
    for route in routes:
        if not isinstance(route, Route):
            continue
        operation = getattr(route.endpoint, "openapi", None)
        if operation is None:
            continue
        path = prefix + re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)  # OpenAPI knows no converters (:int)
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": f"{title} API", "version": version,
                 "description": "Jobs, events, stats and workers of an activejob queue. Live events: the "
                                "WebSocket at /api/ws (see docs/dashboard.md). Every answer is JSON, errors "
                                "too ({\"error\": \"...\"}): a query parameter or body field an endpoint "
                                "does not list is a 400 (besides ?token=), a body not sent as "
                                "Content-Type: application/json a 415, and a method an endpoint does not "
                                "take a 405 with an Allow header."},
        "paths": paths, "components": COMPONENTS, "security": [{"bearer": []}, {}],
    }
