"""What the API, the WebSocket and the pages share: the dashboard's settings and how a
job is presented (its type's label, phases and resource link, what can be done to it)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio
from starlette.requests import HTTPConnection

from .. import rate_limits, upcasting
from ..definition import registry
from ..errors import InvalidTransition, JobNotFound
from ..models import JobStatus
from ..queue import JobQueue
from ..records import STATUSES, JobInfo
from ..relay import EventRelay
from . import jsonio
from .security import Authorize
from .shared_reads import SharedReads

ORDERS = ("newest", "oldest")
MAX_LIMIT = 200
MAX_TEXT = 200
ACTIVE = (JobStatus.PENDING.value, JobStatus.RUNNING.value, JobStatus.WAITING.value)
RETRYABLE = (JobStatus.FAILED.value, JobStatus.CANCELLED.value)
ACTIVITY_TTL = 1.0
MAX_BULK = 1000


@dataclass
class Dashboard:
    """The settings of one dashboard app (`request.app.state.activejob`)."""

    queue: JobQueue
    relay: EventRelay
    token: str | None = None
    authorize: Authorize | None = None
    title: str = "activejob"
    allowed_origins: tuple[str, ...] = ()
    poll_interval: float = 3.0
    reads: SharedReads = field(default_factory=SharedReads, repr=False)

    async def cursor(self) -> int:
        """A safe `since` for a page rendered now: nothing after it is lost."""
        return await anyio.to_thread.run_sync(self.relay.since_now)

    def stats(self) -> dict[str, Any]:
        """`JobQueue.stats`, shared by every viewer (`shared_reads.py`); blocks."""
        return self.reads.get("stats", self.queue.stats)

    def counts(self, f: JobFilters) -> dict[str, int]:
        """`JobQueue.count_by_status` for a list's filters (all but status), shared; blocks."""
        key = ("counts", f.name, f.queue, f.owner, f.parent_id, f.search)
        return self.reads.get(key, lambda: self.queue.count_by_status(
            name=f.name, queue=f.queue, owner=f.owner, parent_id=f.parent_id, search=f.search))

    async def activity(self) -> dict[str, Any]:
        """The charts' series (`JobQueue.activity`), shared, and read at most once per
        ACTIVITY_TTL seconds however many browsers poll: each read scans the last hour of the log."""
        return await anyio.to_thread.run_sync(
            lambda: self.reads.get("activity", self.queue.activity, min_age=ACTIVITY_TTL))


def dashboard(conn: HTTPConnection) -> Dashboard:
    found: Dashboard = conn.app.state.activejob
    return found


class BadRequest(ValueError):
    """A query parameter or body field that is not allowed; becomes HTTP 400."""


class UnsupportedMediaType(Exception):
    """A body the API cannot read as JSON (sent as a form, as text...); becomes HTTP 415."""


def refuse_unknown(given: Iterable[str], accepted: Sequence[str], what: str) -> None:
    """BadRequest naming the `given` names not in `accepted`, and those accepted: a typo
    (`nmae`, `stauts`) must not quietly widen what a call reads or changes."""
    unknown = sorted({name for name in given if name not in accepted})
    if not unknown:
        return
    names = ", ".join(repr(n) for n in unknown)
    takes = ", ".join(accepted) if accepted else "none"
    raise BadRequest(f"unknown {what}{'s' if len(unknown) > 1 else ''} {names}; this endpoint takes: {takes}")


def text_param(value: str | None, name: str) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > MAX_TEXT:
        raise BadRequest(f"{name} is longer than {MAX_TEXT} characters")
    return value


def int_param(value: str | None, name: str, *, default: int | None = None, lo: int = 0,
              hi: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number") from None
    if number < lo or (hi is not None and number > hi):
        raise BadRequest(f"{name} must be between {lo} and {hi}" if hi is not None else f"{name} must be >= {lo}")
    return number


def bool_param(value: str | None, name: str) -> bool | None:
    if value is None or value == "":
        return None
    if value not in ("true", "false"):
        raise BadRequest(f"{name} must be true or false")
    return value == "true"


def status_param(values: list[str]) -> list[str] | None:
    wanted: list[str] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if part not in STATUSES:
                raise BadRequest(f"status must be one of {', '.join(STATUSES)}; got {part!r}")
            wanted.append(part)
    return wanted or None


@dataclass
class JobFilters:
    """The allow-listed filters of a job list (query string in, store arguments out)."""

    status: list[str] | None = None
    name: str | None = None
    queue: str | None = None
    owner: str | None = None
    parent_id: int | None = None
    search: str | None = None
    limit: int = 50
    offset: int = 0
    order: str = "newest"

    @classmethod
    def parse(cls, params: Any, *, default_limit: int = 50) -> JobFilters:
        order = params.get("order") or "newest"
        if order not in ORDERS:
            raise BadRequest(f"order must be one of {', '.join(ORDERS)}")
        return cls(
            status=status_param(params.getlist("status")),
            name=text_param(params.get("name"), "name"),
            queue=text_param(params.get("queue"), "queue"),
            owner=text_param(params.get("owner"), "owner"),
            parent_id=int_param(params.get("parent_id") or params.get("parent"), "parent_id", lo=1),
            search=text_param(params.get("q") or params.get("search"), "q"),
            limit=int_param(params.get("limit"), "limit", default=default_limit, lo=1, hi=MAX_LIMIT) or default_limit,
            offset=int_param(params.get("offset"), "offset", default=0, lo=0) or 0,
            order=order,
        )

    def query(self, **changes: Any) -> dict[str, Any]:
        """The filters as query-string items (for links), with some changed."""
        items: dict[str, Any] = {
            "status": ",".join(self.status) if self.status else None, "name": self.name, "queue": self.queue,
            "owner": self.owner, "parent_id": self.parent_id, "q": self.search,
            "order": self.order if self.order != "newest" else None,
            "offset": self.offset or None, "limit": self.limit if self.limit != 50 else None,
        }
        items.update(changes)
        return {k: v for k, v in items.items() if v not in (None, "")}

    @property
    def active(self) -> bool:
        return any((self.name, self.queue, self.owner, self.parent_id, self.search))


def list_jobs(queue: JobQueue, f: JobFilters) -> tuple[list[JobInfo], bool]:
    """One page of jobs, and whether there are more after it."""
    found = queue.list_jobs(status=f.status, name=f.name, queue=f.queue, owner=f.owner,
                            parent_id=f.parent_id, search=f.search, limit=f.limit + 1,
                            offset=f.offset, order=f.order)
    return found[:f.limit], len(found) > f.limit


# -- presenting a job --------------------------------------------------------------------

def safe_link(link: Any) -> str | None:
    """A resource link, if it is an absolute http(s) URL or a path on this site (`/...`).

    Judged as a browser reads it, not as urlsplit does: browsers treat `\\` as `/` and drop
    tabs, newlines and leading or trailing blanks, so `/\\evil.example` or `/\\t/evil.example`
    would be the protocol-relative `//evil.example`, another site."""
    if not isinstance(link, str) or not link or len(link) > 2000:
        return None
    if "\\" in link or link != link.strip() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in link):
        return None
    try:
        parts = urlsplit(link)
        host = parts.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return None
    if parts.scheme:
        return link if parts.scheme in ("http", "https") and host else None
    return link if link.startswith("/") and not link.startswith("//") else None


def type_info(name: str) -> dict[str, Any]:
    """Label, expected phases and concurrency limit of a job type (registered in this process, or not)."""
    cls = registry.get(name)
    if cls is None:
        return {"label": name.replace("_", " ").capitalize(), "phases": [], "description": "", "known": False,
                "limit": None, "per_key": False, "rate_limit": None, "rate_per_key": False}
    opts = cls.options
    return {"label": opts.label or name, "phases": list(opts.phases), "description": opts.description,
            "known": True, "limit": opts.concurrency_limit, "per_key": opts.concurrency_key is not None,
            "rate_limit": rate_limits.text(opts.rate_limit) if opts.rate_limit else None,
            "rate_per_key": opts.rate_limit_key is not None}


def resource_link(job: JobInfo) -> str | None:
    cls = registry.get(job.name)
    if cls is None or cls.options.resource_link is None:
        return None
    try:
        args = job.args if isinstance(job.args, dict) else {"value": job.args}
        return safe_link(cls.options.resource_link(args))
    except Exception:
        return None


def current_args(job: JobInfo) -> Any:
    """A job's arguments as today's code reads them (upcast from an older version)."""
    return upcasting.current_args(job, registry)


def job_json(job: JobInfo) -> dict[str, Any]:
    """A job on the API: the stored fields plus what its type says and what can be done."""
    out = job.to_dict()
    out["args"] = current_args(job)  # as today's code reads them (older jobs upcast)
    out.update(type_info(job.name))
    out.pop("known", None)
    out["resource_link"] = resource_link(job)
    out["finished"] = job.finished
    out["actions"] = actions(job)
    return out


def actions(job: JobInfo) -> list[str]:
    out = []
    if job.status in ACTIVE:
        out.append("cancel")
    if job.status in RETRYABLE:
        out.append("retry")
    if job.status != JobStatus.RUNNING.value:
        out.append("delete")
    return out


def pretty_json(value: Any) -> str:
    return jsonio.dumps(value, pretty=True)


# -- changing a job (guarded by the state the person saw) ----------------------------------

class Conflict(Exception):
    """The job is no longer in the state the person saw; nothing was changed."""

    def __init__(self, message: str, job: JobInfo | None) -> None:
        super().__init__(message)
        self.job = job


def require_job(queue: JobQueue, job_id: int) -> JobInfo:
    """The job, or JobNotFound (a 404 on the API)."""
    job = queue.get_job(job_id)
    if job is None:
        raise JobNotFound(f"no job with id {job_id}")
    return job


def cancel_job(queue: JobQueue, job_id: int, expected: str | None) -> JobInfo:
    """Cancel a job that is still pending, waiting or running; with `expected`, only if it is
    still in that state (checked by the UPDATE that cancels it: a stale click changes nothing)."""
    try:
        queue.cancel(job_id, expect=[expected] if expected else ACTIVE)
    except InvalidTransition as error:
        raise Conflict(str(error), queue.get_job(job_id)) from None
    after = queue.get_job(job_id)
    assert after is not None
    return after


def retry_job(queue: JobQueue, job_id: int, expected: str | None) -> JobInfo:
    """Run a failed/cancelled job again; with `expected`, only if it is still in that state
    (one atomic UPDATE: a second click never runs it twice)."""
    if expected is not None and expected not in RETRYABLE:
        raise BadRequest(f"expected_status for a retry is {' or '.join(RETRYABLE)}")
    try:
        queue.retry(job_id, expect=[expected] if expected else None)
    except InvalidTransition as error:
        raise Conflict(str(error), queue.get_job(job_id)) from None
    after = queue.get_job(job_id)
    assert after is not None
    return after


def delete_job(queue: JobQueue, job_id: int, expected: str | None) -> None:
    """Delete a job; with `expected`, only if it is still in that state (checked by the
    DELETE itself: a stale click changes nothing)."""
    require_job(queue, job_id)
    try:
        queue.delete(job_id, expect=[expected] if expected else None)
    except InvalidTransition as error:
        raise Conflict(str(error), queue.get_job(job_id)) from None


def bulk_ids(body: dict[str, Any]) -> list[int]:
    """The `ids` of a bulk action's body: a non-empty list of at most MAX_BULK job ids."""
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids:
        raise BadRequest("ids must be a non-empty list of job ids")
    if len(ids) > MAX_BULK:
        raise BadRequest(f"ids holds {len(ids)} job ids; at most {MAX_BULK} at once")
    if any(isinstance(i, bool) or not isinstance(i, int) or i < 1 for i in ids):
        raise BadRequest("ids must be whole numbers (job ids)")
    return list(dict.fromkeys(ids))


# -- queues ------------------------------------------------------------------------------

