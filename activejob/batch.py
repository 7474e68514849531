"""Batches: run a group of jobs, then callbacks once they have all finished.

    with Batch(on_complete=Summarize, on_success=Publish, description="import 2026-12") as batch:
        ImportRow.perform_later(row=1)
        ImportRow.perform_all_later([{"row": 2}, {"row": 3}])
    queue.get_batch(batch.id).progress     # 0..1

Every job enqueued inside the block, from sync or async code (`async with Batch(...)`),
joins the batch; `batch.add(Job, **args)` or `Job.set(batch=batch)` adds one later, also from
a member job (`Job.set(batch=self.batch)`), until the batch has finished.

A callback is a job type (enqueued with no arguments), a configured one
(`Publish.set(queue="web")`) or a pair `(Job, {"arg": ...})`; its `perform` reads the batch as
`self.batch`. `on_complete` runs once after every member has finished, whatever the outcomes;
`on_success` only if they all completed; `on_failure` once, as soon as one member has failed
for good. Each callback is written by the same transaction that marks it due, so however
many workers finish members at once, it runs once.
"""

from __future__ import annotations

import json
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from .enqueuing import ConfiguredJob, after_commit, backend, reset_current_batch, set_current_batch
from .errors import ConfigurationError
from .request import EnqueueRequest, text_problem

if TYPE_CHECKING:
    import contextvars

    from .handle import JobHandle


class Batch:
    """A group of jobs with callbacks; see the module's docstring for a use."""

    def __init__(self, *, on_complete: Any = None, on_success: Any = None, on_failure: Any = None,
                 description: str | None = None, owner: str | None = None, id: int | None = None) -> None:
        self.callbacks = {kind: spec for kind, spec in
                          (("complete", on_complete), ("success", on_success), ("failure", on_failure))
                          if spec is not None}
        self.description = description
        self.owner = None if owner is None else str(owner)
        for field, value in (("description", description), ("owner", self.owner)):
            problem = text_problem(value, field) if isinstance(value, str) else None
            if problem is not None:  # refused here, not by the database's driver at `with`
                raise ConfigurationError(f"Batch: {field} {problem}")
        self.id: int | None = id
        self._tokens: list[contextvars.Token[Any]] = []

    @classmethod
    def open(cls, batch_id: int) -> Batch:
        """An existing batch, to add members to: `with Batch.open(id): Job.perform_later(...)`."""
        return cls(id=int(batch_id))

    def __repr__(self) -> str:
        return f"<Batch #{self.id} {self.description or ''}>".replace(" >", ">")

    # -- the block --------------------------------------------------------------------

    def __enter__(self) -> Batch:
        if self.id is None:
            self.id = backend().create_batch(description=self.description, owner=self.owner,
                                             callbacks=self._encoded_callbacks())
        self._tokens.append(set_current_batch(self))
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        reset_current_batch(self._tokens.pop())
        if self.id is not None:
            # Sealed even when the block raised: the members written so far are a batch too.
            # Inside a framework's transaction the members wait for its commit, so the seal does.
            batch_id = self.id
            if not after_commit("batch", lambda: backend().seal_batch(batch_id)):
                backend().seal_batch(batch_id)

    async def __aenter__(self) -> Batch:
        if self.id is None:
            callbacks = self._encoded_callbacks()
            self.id = await anyio.to_thread.run_sync(lambda: backend().create_batch(
                description=self.description, owner=self.owner, callbacks=callbacks))
        self._tokens.append(set_current_batch(self))
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        tb: TracebackType | None) -> None:
        reset_current_batch(self._tokens.pop())
        if self.id is not None:
            batch_id = self.id
            await anyio.to_thread.run_sync(lambda: backend().seal_batch(batch_id))

    # -- adding later -----------------------------------------------------------------

    def add(self, job: Any, args: Any = None, /, **kwargs: Any) -> JobHandle:
        """Enqueue one more member: `batch.add(ImportRow, row=4)` (or a configured job)."""
        if self.id is None:
            raise ConfigurationError("this batch has not been created yet: use it as `with Batch(...) as batch:`")
        configured = job if isinstance(job, ConfiguredJob) else job.set()
        return configured.set(batch=self.id).perform_later(args, **kwargs)

    # -- callbacks --------------------------------------------------------------------

    def _encoded_callbacks(self) -> str | None:
        if not self.callbacks:
            return None
        limit = backend().max_args_bytes
        encoded = {kind: _request(kind, spec, limit, self.owner) for kind, spec in self.callbacks.items()}
        return json.dumps({kind: {
            "name": r.name, "args": r.args, "queue": r.queue, "priority": r.priority, "max_retries": r.max_retries,
            "owner": r.owner, "args_version": r.args_version, "meta": r.meta,
        } for kind, r in encoded.items()})


def _request(kind: str, spec: Any, max_args_bytes: int, owner: str | None) -> EnqueueRequest:
    """A callback as the request to write when it is due (its arguments checked now)."""
    args: Any = None
    if isinstance(spec, tuple) and len(spec) == 2:
        spec, args = spec
    configured = spec if isinstance(spec, ConfiguredJob) else getattr(spec, "set", None)
    if configured is None:
        raise ConfigurationError(f"on_{kind} takes a job type, Job.set(...) or (Job, args), got {spec!r}")
    if not isinstance(configured, ConfiguredJob):
        configured = configured()
    if configured.owner is None and owner is not None:
        configured = configured.set(owner=owner)
    return configured.set(batch=None).request(args or {}, max_args_bytes=max_args_bytes)
