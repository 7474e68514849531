"""OpenTelemetry spans for every enqueue and every attempt, following the messaging
semantic conventions (install the `otel` extra: `pip install 'activejob[otel]'`).

    import activejob.tracing
    activejob.tracing.instrument()            # or activejob.configure(..., tracing=True)

`perform_later` & co. run in a PRODUCER span `send <queue>` and store its trace context in
the job's `meta`; each attempt runs in a CONSUMER span `process <queue>` of that same trace
(a child of the producer span, with a link to it too, since the producer span has long ended
when a worker takes the job): a retry is one more such span. Attributes:
`messaging.system="activejob"`, `messaging.operation.type` ("send" / "process"),
`messaging.destination.name` (the queue), `messaging.message.id` (the job id),
`activejob.job.name`, `activejob.attempt`. An attempt that raises records the exception and
sets the span's status to ERROR.

OpenTelemetry is imported when tracing is turned on, never by the rest of activejob.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from . import middleware
from .errors import ConfigurationError, JobCancelled, WaitForChildren

SYSTEM = "activejob"
_installed: Tracing | None = None


def instrument(tracer_provider: Any = None) -> Tracing:
    """Trace every enqueue and attempt in this process (once; later calls return the same
    middleware). `tracer_provider` defaults to OpenTelemetry's global one.

        provider = TracerProvider(); provider.add_span_processor(...)
        activejob.tracing.instrument(tracer_provider=provider)
    """
    global _installed
    if _installed is None:
        _installed = Tracing(tracer_provider)
        middleware.instrument(_installed)
    return _installed


def uninstrument() -> None:
    """Stop tracing (tests)."""
    global _installed
    if _installed is not None:
        middleware.uninstrument(_installed)
        _installed = None


class Tracing:
    """The middleware `instrument()` installs: spans around enqueues and attempts."""

    def __init__(self, tracer_provider: Any = None) -> None:
        try:
            from opentelemetry import trace
        except ImportError:
            raise ConfigurationError("tracing needs OpenTelemetry: pip install 'activejob[otel]'") from None
        self._trace = trace
        self.tracer = trace.get_tracer("activejob", tracer_provider=tracer_provider)

    # -- enqueue: a producer span, its context stored with the jobs ------------------------

    @contextmanager
    def _producer(self, enqueue: middleware.Enqueue) -> Iterator[Any]:
        from opentelemetry import propagate

        queue = enqueue.request.queue if enqueue.requests else "default"
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEM, "messaging.operation.type": "send", "messaging.operation.name": "send",
            "messaging.destination.name": queue, "activejob.job.name": enqueue.name,
        }
        if len(enqueue.requests) > 1:
            attributes["messaging.batch.message_count"] = len(enqueue.requests)
        with self.tracer.start_as_current_span(f"send {queue}", kind=self._trace.SpanKind.PRODUCER,
                                               attributes=attributes) as span:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            enqueue.merge_meta(trace=carrier)
            yield span

    @staticmethod
    def _identify(span: Any, handles: list[Any]) -> None:
        if len(handles) == 1 and getattr(handles[0], "id", None) is not None:  # None: held for a commit
            span.set_attribute("messaging.message.id", str(handles[0].id))

    def enqueue(self, enqueue: middleware.Enqueue, proceed: Callable[[], list[Any]]) -> list[Any]:
        with self._producer(enqueue) as span:
            handles = proceed()
            self._identify(span, handles)
            return handles

    async def aenqueue(self, enqueue: middleware.Enqueue, proceed: Callable[[], Awaitable[list[Any]]]) -> list[Any]:
        with self._producer(enqueue) as span:
            handles = await proceed()
            self._identify(span, handles)
            return handles

    # -- perform: a consumer span in the producer's trace -----------------------------------

    @contextmanager
    def _consumer(self, perform: middleware.Perform) -> Iterator[Any]:
        from opentelemetry import propagate
        from opentelemetry.trace import Link, Status, StatusCode

        carrier = perform.meta.get("trace")
        parent = propagate.extract(carrier) if isinstance(carrier, dict) else None
        producer = self._trace.get_current_span(parent).get_span_context() if parent is not None else None
        links = [Link(producer)] if producer is not None and producer.is_valid else []
        queue = perform.queue or "default"
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEM, "messaging.operation.type": "process", "messaging.operation.name": "process",
            "messaging.destination.name": queue, "activejob.job.name": perform.name,
            "activejob.attempt": perform.attempt,
        }
        if perform.job_id is not None:
            attributes["messaging.message.id"] = str(perform.job_id)
        with self.tracer.start_as_current_span(
                f"process {queue}", context=parent if links else None, kind=self._trace.SpanKind.CONSUMER,
                attributes=attributes, links=links, record_exception=False, set_status_on_exception=False) as span:
            try:
                yield span
            except (JobCancelled, WaitForChildren):
                raise  # not failures: the job was cancelled, or waits for its children
            except BaseException as error:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
                raise

    def perform(self, perform: middleware.Perform, proceed: Callable[[], Any]) -> Any:
        with self._consumer(perform):
            return proceed()

    async def aperform(self, perform: middleware.Perform, proceed: Callable[[], Awaitable[Any]]) -> Any:
        with self._consumer(perform):
            return await proceed()
