"""OpenTelemetry: a producer span at enqueue, a consumer span per attempt in the same trace,
with the messaging conventions' attributes (the SDK's in-memory exporter)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel
from runner_support import job_info

import activejob
from activejob import BaseJob, JobQueue, job, tracing
from activejob.testing import inline


class N(BaseModel):
    n: int = 0


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.instrument(tracer_provider=provider)
    yield exporter
    tracing.uninstrument()


def _of(exporter: InMemorySpanExporter, kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.kind == kind]


def _job() -> type[BaseJob[N]]:
    @job("tr_job", schema=N, queue="mail", max_retries=2, backoff=0)
    class Traced(BaseJob[N]):
        def perform(self, args: N) -> int:
            if self.attempt <= args.n:
                raise ValueError(f"attempt {self.attempt}")
            return self.attempt

    return Traced


def test_perform_later_records_a_producer_span_per_the_messaging_conventions(
        queue: JobQueue, spans: InMemorySpanExporter) -> None:
    handle = _job().perform_later()
    [producer] = _of(spans, SpanKind.PRODUCER)
    assert producer.name == "send mail"
    assert dict(producer.attributes or {}) == {
        "messaging.system": "activejob", "messaging.operation.type": "send", "messaging.operation.name": "send",
        "messaging.destination.name": "mail", "activejob.job.name": "tr_job",
        "messaging.message.id": str(handle.id)}


def test_the_trace_context_is_stored_in_the_jobs_meta_beside_its_timeout(
        queue: JobQueue, spans: InMemorySpanExporter) -> None:
    handle = _job().set(timeout=9).perform_later()
    [producer] = _of(spans, SpanKind.PRODUCER)
    meta: dict[str, Any] = job_info(queue, handle.id).meta
    assert meta["timeout"] == 9
    assert meta["trace"]["traceparent"].split("-")[1] == f"{producer.context.trace_id:032x}"


def test_a_worker_runs_the_job_in_a_consumer_span_of_the_same_trace(
        queue: JobQueue, spans: InMemorySpanExporter) -> None:
    handle = _job().perform_later()
    queue.run_until_idle()
    [producer] = _of(spans, SpanKind.PRODUCER)
    [consumer] = _of(spans, SpanKind.CONSUMER)
    assert consumer.context.trace_id == producer.context.trace_id
    assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id
    assert [link.context.span_id for link in consumer.links] == [producer.context.span_id]
    assert consumer.name == "process mail"
    attributes = dict(consumer.attributes or {})
    assert attributes["messaging.system"] == "activejob"
    assert attributes["messaging.operation.type"] == "process"
    assert attributes["messaging.destination.name"] == "mail"
    assert attributes["messaging.message.id"] == str(handle.id)
    assert consumer.status.status_code == StatusCode.UNSET


def test_a_retry_is_another_consumer_span_of_the_same_trace(queue: JobQueue, spans: InMemorySpanExporter) -> None:
    _job().perform_later(n=1)
    queue.run_until_idle()
    [producer] = _of(spans, SpanKind.PRODUCER)
    consumers = sorted(_of(spans, SpanKind.CONSUMER), key=lambda s: (s.attributes or {})["activejob.attempt"])
    assert [(s.attributes or {})["activejob.attempt"] for s in consumers] == [1, 2]
    assert {s.context.trace_id for s in consumers} == {producer.context.trace_id}
    assert [s.status.status_code for s in consumers] == [StatusCode.ERROR, StatusCode.UNSET]
    assert [e.name for e in consumers[0].events] == ["exception"]


def test_an_async_job_is_traced_too(queue: JobQueue, spans: InMemorySpanExporter) -> None:
    @job("tr_async", schema=N)
    class AsyncJob(BaseJob[N]):
        async def perform(self, args: N) -> None: ...

    AsyncJob.perform_later()
    queue.run_until_idle()
    [producer] = _of(spans, SpanKind.PRODUCER)
    [consumer] = _of(spans, SpanKind.CONSUMER)
    assert consumer.context.trace_id == producer.context.trace_id


def test_perform_all_later_is_one_producer_span_for_every_job(queue: JobQueue, spans: InMemorySpanExporter) -> None:
    _job().perform_all_later([{"n": 0}, {"n": 0}, {"n": 0}])
    queue.run_until_idle()
    [producer] = _of(spans, SpanKind.PRODUCER)
    assert (producer.attributes or {})["messaging.batch.message_count"] == 3
    assert {s.context.trace_id for s in _of(spans, SpanKind.CONSUMER)} == {producer.context.trace_id}


def test_inline_jobs_are_traced_within_the_producer_span(spans: InMemorySpanExporter) -> None:
    with inline():
        _job().perform_later()
    [producer] = _of(spans, SpanKind.PRODUCER)
    [consumer] = _of(spans, SpanKind.CONSUMER)
    assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id


def test_configure_with_tracing_instruments_the_process(db_url: str) -> None:
    try:
        activejob.configure(db_url, tracing=True)
        assert any(isinstance(m, tracing.Tracing) for m in activejob.middleware.installed())
    finally:
        tracing.uninstrument()
        JobQueue.reset()
    assert not any(isinstance(m, tracing.Tracing) for m in activejob.middleware.installed())


def test_activejob_runs_without_importing_opentelemetry() -> None:
    import subprocess
    import sys

    code = ("import sys, activejob, activejob.testing, activejob.queue; "
            "assert not [m for m in sys.modules if m.startswith('opentelemetry')]")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
