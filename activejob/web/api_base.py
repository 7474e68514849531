"""What every REST API module builds on: the `api` decorator that turns the errors below into
JSON responses, and a job as a viewer token may see it (api.py lists the endpoints).
"""

from __future__ import annotations

import functools
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..errors import JobNotFound, UnknownScheduleError
from ..records import JobInfo
from . import core
from .core import BadRequest, Conflict, UnsupportedMediaType, refuse_unknown
from .jsonio import JSONResponse
from .openapi import Accepted, Handler
from .security import CSRFError, viewer

ACCEPTED_KEY = "activejob.accepted"  # the running endpoint's Accepted, for the body check (api_changes.py)


def accepted(request: Request) -> Accepted:
    """What the endpoint handling this request accepts (its OpenAPI description, `doc`)."""
    found = request.scope.get(ACCEPTED_KEY)
    return found if isinstance(found, Accepted) else Accepted()


def api(fn: Handler) -> Handler:
    """An API endpoint: query parameters it does not describe (`doc`) are refused, and errors
    are JSON: 400 bad input, 403 CSRF, 404 unknown job or schedule, 409 conflict, 415 a body not JSON.

    Apply `doc` over it: the check reads the description `doc` attaches to this handler."""
    @functools.wraps(fn)
    async def handler(request: Request) -> Response:
        try:
            takes: Accepted = getattr(handler, "accepted", None) or Accepted()
            request.scope[ACCEPTED_KEY] = takes
            refuse_unknown(request.query_params.keys(), takes.query, "query parameter")
            return await fn(request)
        except UnsupportedMediaType as error:
            return JSONResponse({"error": str(error)}, status_code=415, headers={"Accept-Post": "application/json"})
        except BadRequest as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        except (CSRFError, Forbidden) as error:
            return JSONResponse({"error": str(error)}, status_code=403)
        except (JobNotFound, UnknownScheduleError) as error:
            return JSONResponse({"error": str(error)}, status_code=404)
        except Conflict as error:
            job = core.job_json(error.job) if error.job is not None else None
            return JSONResponse({"error": str(error), "job": job}, status_code=409)
    return handler


def path_job_id(request: Request) -> int:
    value: int = request.path_params["job_id"]
    return value


class Forbidden(Exception):
    """A viewer asked for a change its token does not allow; becomes HTTP 403."""


def visible(request: Request, job: JobInfo) -> JobInfo:
    """The job, if this request may see it; else JobNotFound (a viewer learns nothing of
    other owners' jobs, not even that they exist)."""
    scope = viewer(request)
    if scope is not None and not scope.allows(job.id, job.owner):
        raise JobNotFound(f"no job with id {job.id}")
    return job


def shown(request: Request, job: JobInfo) -> dict[str, Any]:
    """A job on the API; a viewer's `actions` are only those its token allows."""
    out = core.job_json(job)
    scope = viewer(request)
    if scope is not None:
        out["actions"] = [a for a in out["actions"] if a == "cancel" and scope.can_cancel]
    return out
