"""activejob's pytest plugin: fixtures for testing code that uses jobs.

Active in every pytest run once activejob is installed (the `pytest11` entry point
`activejob`); `pytest -p no:activejob` turns it off.

    def test_signup_enqueues_a_welcome_email(enqueued):
        signup("a@example.com")
        assert_enqueued(SendEmail, args={"to": "a@example.com"})

    def test_welcome_email_is_sent(activejob_queue):
        signup("a@example.com")
        perform_enqueued_jobs()
        assert_performed(SendEmail)

- `activejob_queue`: a fresh `JobQueue` on a SQLite file in the test's temporary
  directory, the process-wide queue for the test (so `perform_later` writes to it), put
  back as it was after. Options for it: `@pytest.mark.activejob_queue(concurrency=2)`.
- `enqueued`: a `capture_enqueued()` for the whole test: the `CapturedJobs` list.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .queue import JobQueue
    from .testing import CapturedJobs

QUEUE_DEFAULTS: dict[str, Any] = {"poll_interval": 0.05, "progress_interval": 0.05}
"""Short intervals, so a test that starts a real worker (`queue.start()`) is quick."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "activejob_queue(**options): JobQueue options for the activejob_queue fixture")


@pytest.fixture
def activejob_queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobQueue]:
    """A fresh JobQueue on a temporary SQLite file, the process-wide queue for this test."""
    from .queue import JobQueue

    marker = request.node.get_closest_marker("activejob_queue")
    options = {**QUEUE_DEFAULTS, **(marker.kwargs if marker else {})}
    queue = JobQueue(f"sqlite:///{tmp_path}/activejob.db", **options)
    if queue.settings.auto_migrate:
        queue.list_jobs(limit=1)  # the schema, now: a problem shows in the fixture, not in the test
    # Swapped in by hand (not `configure`, which closes the queue it replaces): a queue the
    # test session configured before comes back afterwards, untouched.
    with JobQueue._current_lock:
        previous, JobQueue._current = JobQueue._current, queue
    try:
        yield queue
    finally:
        with JobQueue._current_lock:
            if JobQueue._current is queue:
                JobQueue._current = previous
        queue.close()


@pytest.fixture
def enqueued() -> Iterator[CapturedJobs]:
    """`capture_enqueued()` for the whole test: jobs enqueued are kept in this list, not run."""
    from .testing import capture_enqueued

    with capture_enqueued() as jobs:
        yield jobs
