"""What every REST API module builds on: the `api` decorator that turns the errors below into
JSON responses, and a job as a viewer token may see it (api.py lists the endpoints).
"""

from __future__ import annotations

import functools
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..errors import JobNotFound
from ..records import JobInfo
from . import core
from .core import BadRequest, Conflict
from .jsonio import JSONResponse
from .openapi import Handler
from .security import CSRFError, viewer


def api(fn: Handler) -> Handler:
    """JSON errors for the API: 400 bad input, 403 CSRF, 404 unknown job, 409 conflict."""
    @functools.wraps(fn)
    async def handler(request: Request) -> Response:
        try:
            return await fn(request)
        except BadRequest as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        except (CSRFError, Forbidden) as error:
            return JSONResponse({"error": str(error)}, status_code=403)
        except JobNotFound as error:
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
