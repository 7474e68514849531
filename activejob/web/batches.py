"""Batches on the dashboard and the API: the list, a batch's page with counts and live
progress, and cancelling one.

    GET  /api/batches                ?unfinished=&limit=  (limit 1 to 500, default 50)
    GET  /api/batches/{id}           the batch (BatchInfo) and its members
    GET  /api/batches/{id}/events    ?after=  the batch's own events and its members'
    POST /api/batches/{id}/cancel    cancel the members not yet finished

A viewer token sees only its owner's batches (a batch's owner is `Batch(owner=...)`) and
may not cancel them.
"""

from __future__ import annotations

from typing import Any

import anyio
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..errors import JobNotFound
from ..records import BatchInfo, JobInfo
from .api_base import Forbidden, api, shown
from .api_changes import form, proven
from .api_reads import event_page
from .core import bool_param, dashboard, int_param
from .jsonio import JSONResponse
from .openapi import CSRF_BODY, doc, param
from .pages import _render as render
from .security import base_path, viewer

BATCH_ID = param("batch_id", {"type": "integer"}, "The batch's id.", where="path")
MEMBERS_SHOWN = 500
MAX_BATCHES = 500


def _visible(request: Request, batch: BatchInfo | None, batch_id: int) -> BatchInfo:
    scope = viewer(request)
    if batch is None or (scope is not None and not scope.allows_batch(batch.owner)):
        raise JobNotFound(f"no batch with id {batch_id}")
    return batch


def _read(request: Request, batch_id: int) -> tuple[BatchInfo, list[JobInfo]]:
    queue = dashboard(request).queue
    batch = _visible(request, queue.get_batch(batch_id), batch_id)
    return batch, queue.batch_members(batch_id, limit=MEMBERS_SHOWN)


@doc("List batches", parameters=[
    param("unfinished", {"type": "boolean"}, "Only batches still running (true) or finished (false)."),
    param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_BATCHES}, "At most this many, newest first "
          "(default 50)."),
])
@api
async def list_batches(request: Request) -> Response:
    """Batches, newest first, with their counts and progress."""
    params = request.query_params
    unfinished = bool_param(params.get("unfinished"), "unfinished")
    limit = int_param(params.get("limit"), "limit", default=50, lo=1, hi=MAX_BATCHES) or 50
    scope = viewer(request)
    if scope is not None and scope.owner is None:
        return JSONResponse({"batches": []})
    owner = scope.owner if scope is not None else None
    found = await anyio.to_thread.run_sync(
        lambda: dashboard(request).queue.list_batches(limit=limit, unfinished=unfinished, owner=owner))
    return JSONResponse({"batches": [b.to_dict() for b in found]})


@doc("Get a batch and its members", parameters=[BATCH_ID], errors=(404,))
@api
async def get_batch(request: Request) -> Response:
    """The batch's counts, progress and callbacks' state, and its members (oldest first)."""
    batch_id: int = request.path_params["batch_id"]
    batch, members = await anyio.to_thread.run_sync(_read, request, batch_id)
    callbacks = await anyio.to_thread.run_sync(dashboard(request).queue.batch_callbacks, batch_id)
    return JSONResponse({"batch": batch.to_dict(), "members": [shown(request, m) for m in members],
                         "callbacks": [shown(request, c) for c in callbacks]})


@doc("Events of a batch", response="EventList", parameters=[
    BATCH_ID, param("after", {"type": "integer", "minimum": 0}, "Only events after this id."),
], errors=(404,))
@api
async def batch_events(request: Request) -> Response:
    """The batch's own events (`batch_failed`, `batch_finished`, `batch_cancelled`: `job_id`
    null) and every event of its members, after `after`, oldest first. Pass the returned
    `cursor` as the next `after`; or follow them live on the WebSocket with
    `{"action": "subscribe", "batch_id": ID}`."""
    batch_id: int = request.path_params["batch_id"]
    _visible(request, await anyio.to_thread.run_sync(dashboard(request).queue.get_batch, batch_id), batch_id)
    after = int_param(request.query_params.get("after"), "after", default=0) or 0
    return await event_page(request, after=after, job_id=None, owner=None, batch_id=batch_id, limit=1000)


@doc("Cancel a batch's unfinished members", parameters=[BATCH_ID], body=CSRF_BODY, errors=(404,))
@api
async def cancel_batch(request: Request) -> Response:
    """Pending and waiting members are cancelled at once, running ones as soon as their
    workers hear; the batch then finishes and its on_complete callback runs."""
    if viewer(request) is not None:
        raise Forbidden("forbidden: a viewer token may not cancel batches")
    _body, from_form = await proven(request)
    batch_id: int = request.path_params["batch_id"]
    queue = dashboard(request).queue
    _visible(request, await anyio.to_thread.run_sync(queue.get_batch, batch_id), batch_id)
    batch = await anyio.to_thread.run_sync(queue.cancel_batch, batch_id)
    if from_form:
        return RedirectResponse(f"{base_path(request.scope)}/batches/{batch_id}", status_code=303)
    return JSONResponse({"batch": batch.to_dict()})


def api_routes() -> list[BaseRoute]:
    return [
        Route("/batches", list_batches, methods=["GET"]),
        Route("/batches/{batch_id:int}", get_batch, methods=["GET"]),
        Route("/batches/{batch_id:int}/events", batch_events, methods=["GET"]),
        Route("/batches/{batch_id:int}/cancel", cancel_batch, methods=["POST"]),
    ]


# -- pages ------------------------------------------------------------------------------

async def batches_page(request: Request) -> Response:
    dash = dashboard(request)
    cursor = await dash.cursor()
    found = await anyio.to_thread.run_sync(lambda: dash.queue.list_batches(limit=100))
    context = {"page": "batches", "batches": found, "cursor": cursor}
    fragment = request.query_params.get("fragment")
    return await render(request, "_batches_live.html" if fragment else "batches.html", context)


async def batch_page(request: Request) -> Response:
    dash = dashboard(request)
    batch_id: int = request.path_params["batch_id"]
    cursor = await dash.cursor()
    try:
        batch, members = await anyio.to_thread.run_sync(_read, request, batch_id)
    except JobNotFound:
        raise HTTPException(404, f"There is no batch #{batch_id}.") from None
    callbacks = await anyio.to_thread.run_sync(dash.queue.batch_callbacks, batch_id)
    context: dict[str, Any] = {"page": "batch", "batch": batch, "members": members, "callbacks": callbacks,
                               "more": batch.total > len(members), "cursor": cursor,
                               "actions": [] if batch.finished else ["cancel"]}
    fragment = request.query_params.get("fragment")
    return await render(request, "_batch_live.html" if fragment else "batch.html", context)


def page_routes() -> list[BaseRoute]:
    return [
        Route("/batches", batches_page, name="batches"),
        Route("/batches/{batch_id:int}", batch_page, name="batch"),
        # The batch page's Cancel button: a plain form (api_changes.form), answered with a redirect.
        Route("/batches/{batch_id:int}/cancel", form(cancel_batch), methods=["POST"]),
    ]


