"""The REST API (JSON, under `/api`); its OpenAPI description is in openapi.py.

    GET  /api/jobs                   ?status=&name=&queue=&owner=&parent_id=&q=&order=&limit=&offset=
    GET  /api/jobs/{id}              the job, its events and its children
    GET  /api/jobs/{id}/events       ?after=
    GET  /api/jobs/{id}/explain      why it is, or is not, running: a reason code and a message
    POST /api/jobs/{id}/cancel       {"expected_status": "running"}
    POST /api/jobs/{id}/retry        {"expected_status": "failed"}
    POST /api/jobs/{id}/delete       {"expected_status": "completed"}
    POST /api/queues/{name}/pause    workers start none of the queue's jobs until it is resumed
    POST /api/queues/{name}/resume
    POST /api/jobs/retry-failed      {"name": ..., "queue": ..., "q": ...}: every failed job that matches
    POST /api/jobs/cancel            {"ids": [...]}: those pending, waiting or running
    POST /api/jobs/delete            {"ids": [...]}: those finished
    GET  /api/activity               the last hour per minute: finished by status, depth and oldest age per queue
    GET  /api/events                 ?after=&job_id=&batch_id=&owner=&limit=   (the polling fallback)
    GET  /api/stats                  counts per status, per job type and per queue; paused queues, queue rate limits
    GET  /api/workers                live workers and their last heartbeat
    GET  /api/job-types              registered job types (label, phases, schema, ...)
    GET  /api/schedules              cron schedules: next run, last slot enqueued, catch-up
    POST /api/schedules/{key}/run    enqueue the schedule's job now (its slots run as usual)
    GET  /api/openapi.json           this, as OpenAPI 3.1

Every endpoint takes the query parameters and JSON body fields its OpenAPI description
lists (and `?token=`); any other is a 400 naming it. A POST body must be JSON
(`Content-Type: application/json`, else 415). Errors are `{"error": "..."}`, a wrong method
(405, with Allow) and the Host check's 400 included.

The handlers are in api_reads.py (the GETs) and api_changes.py (the POSTs); api_base.py holds
the `api` decorator and the job helpers both use. The pages' plain forms post to routes of
their own outside /api (`form_routes`).
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from .api_changes import (
    cancel,
    cancel_many,
    delete,
    delete_many,
    pause_queue,
    resume_queue,
    retry,
    retry_failed,
    run_schedule,
)
from .api_changes import form_routes as form_routes
from .api_reads import activity, events, explain, get_job, job_events, job_types, list_jobs, schedules, stats, workers
from .openapi import openapi_schema as openapi_schema


def routes() -> list[BaseRoute]:
    return [
        Route("/jobs", list_jobs, methods=["GET"]),
        Route("/jobs/retry-failed", retry_failed, methods=["POST"]),
        Route("/jobs/cancel", cancel_many, methods=["POST"]),
        Route("/jobs/delete", delete_many, methods=["POST"]),
        Route("/activity", activity, methods=["GET"]),
        Route("/jobs/{job_id:int}", get_job, methods=["GET"]),
        Route("/jobs/{job_id:int}/events", job_events, methods=["GET"]),
        Route("/jobs/{job_id:int}/explain", explain, methods=["GET"]),
        Route("/jobs/{job_id:int}/cancel", cancel, methods=["POST"]),
        Route("/jobs/{job_id:int}/retry", retry, methods=["POST"]),
        Route("/jobs/{job_id:int}/delete", delete, methods=["POST"]),
        # `path`: a queue name may hold a slash, which the default converter would not match.
        Route("/queues/{name:path}/pause", pause_queue, methods=["POST"]),
        Route("/queues/{name:path}/resume", resume_queue, methods=["POST"]),
        Route("/events", events, methods=["GET"]),
        Route("/stats", stats, methods=["GET"]),
        Route("/workers", workers, methods=["GET"]),
        Route("/job-types", job_types, methods=["GET"]),
        Route("/schedules", schedules, methods=["GET"]),
        Route("/schedules/{key:path}/run", run_schedule, methods=["POST"]),
    ]
