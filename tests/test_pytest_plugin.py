"""The pytest plugin (activejob.pytest_plugin, the `pytest11` entry point), run through pytester."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

JOBS = '''
from pydantic import BaseModel
from activejob import BaseJob, job


class MailArgs(BaseModel):
    to: str


@job("plugin_mail", schema=MailArgs, backoff=60)
class Mail(BaseJob[MailArgs]):
    def perform(self, args: MailArgs) -> dict:
        if args.to == "flaky@example.com" and self.attempt < 2:
            raise ConnectionError("smtp down")
        return {"sent": args.to}
'''


@pytest.fixture
def jobs_module(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(plugin_jobs=JOBS)
    pytester.syspathinsert()
    return pytester


def test_the_entry_point_registers_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest_subprocess("--trace-config")
    result.stdout.fnmatch_lines(["*activejob.pytest_plugin*"])
    result.assert_outcomes(passed=1)


def test_fixtures_are_listed(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--fixtures")
    result.stdout.fnmatch_lines(["activejob_queue*", "*fresh JobQueue*", "enqueued*"])


def test_activejob_queue_is_a_fresh_process_wide_queue_reset_after(jobs_module: pytest.Pytester) -> None:
    jobs_module.makepyfile('''
        import activejob
        from activejob import JobQueue
        from activejob.testing import assert_enqueued, assert_performed, perform_enqueued_jobs
        from plugin_jobs import Mail

        seen = []

        def test_first(activejob_queue, tmp_path):
            assert JobQueue.get() is activejob_queue
            assert str(tmp_path) in activejob_queue.settings.database_url
            handle = Mail.perform_later(to="a@example.com")
            assert_enqueued(Mail, args={"to": "a@example.com"}, count=1)
            perform_enqueued_jobs()
            assert handle.status == "completed"
            assert_performed(Mail, count=1)
            seen.append(activejob_queue)

        def test_second_starts_empty(activejob_queue):
            assert activejob_queue is not seen[0]
            assert activejob_queue.list_jobs() == []

        def test_reset_after():
            assert JobQueue._current is None
    ''')
    result = jobs_module.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=3)


def test_activejob_queue_puts_back_a_queue_configured_before(jobs_module: pytest.Pytester) -> None:
    jobs_module.makepyfile('''
        import activejob
        from activejob import JobQueue

        def test_it(activejob_queue, tmp_path):
            assert JobQueue.get() is activejob_queue
    ''')
    jobs_module.makeconftest('''
        import activejob
        import pytest
        from activejob import JobQueue

        @pytest.fixture(autouse=True)
        def session_queue(tmp_path_factory):
            queue = activejob.configure(f"sqlite:///{tmp_path_factory.mktemp('s')}/session.db")
            yield
            assert JobQueue.get() is queue  # the fixture's own queue is gone again
            JobQueue.reset()
    ''')
    jobs_module.runpytest_subprocess().assert_outcomes(passed=1)


def test_the_activejob_queue_marker_passes_options(jobs_module: pytest.Pytester) -> None:
    jobs_module.makeini("[pytest]\naddopts = --strict-markers\n")
    jobs_module.makepyfile('''
        import pytest

        @pytest.mark.activejob_queue(concurrency=3)
        def test_it(activejob_queue):
            assert activejob_queue.settings.concurrency == 3
    ''')
    jobs_module.runpytest_subprocess().assert_outcomes(passed=1)


def test_enqueued_captures_jobs_for_the_test(jobs_module: pytest.Pytester) -> None:
    jobs_module.makepyfile('''
        from activejob import enqueuing
        from activejob.testing import CapturedJobs, assert_enqueued, assert_not_enqueued, perform_enqueued_jobs
        from plugin_jobs import Mail

        def test_it(enqueued):
            assert isinstance(enqueued, CapturedJobs)
            Mail.perform_later(to="b@example.com")
            assert [j.args for j in enqueued] == [{"to": "b@example.com"}]
            assert_enqueued(Mail, args={"to": "b@example.com"})
            assert_not_enqueued(Mail, args={"to": "c@example.com"})
            perform_enqueued_jobs()
            assert enqueued[0].status == "completed"

        def test_failure_message(enqueued):
            Mail.perform_later(to="b@example.com")
            assert_enqueued(Mail, args={"to": "nobody@example.com"})
    ''')
    result = jobs_module.runpytest_subprocess()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*AssertionError: no plugin_mail job with args {'to': 'nobody@example.com'} was enqueued*",
        "*enqueued instead (1):*",
        "*plugin_mail#1 args={'to': 'b@example.com'}*",
    ])


def test_perform_enqueued_jobs_until_with_freezegun_in_a_plugin_test(jobs_module: pytest.Pytester) -> None:
    jobs_module.makepyfile('''
        from datetime import datetime, timedelta, UTC
        from freezegun import freeze_time
        from activejob.testing import assert_performed, perform_enqueued_jobs
        from plugin_jobs import Mail

        def test_it(activejob_queue):
            with freeze_time("2030-01-01 08:00:00"):
                retried = Mail.perform_later(to="flaky@example.com")
                later = Mail.perform_in(timedelta(hours=1), to="later@example.com")
                perform_enqueued_jobs(until=datetime(2030, 1, 1, 10, tzinfo=UTC))
                assert (retried.status, retried.info().attempts) == ("completed", 2)
                assert later.status == "completed"
            assert_performed(Mail, count=2)
    ''')
    jobs_module.runpytest_subprocess().assert_outcomes(passed=1)


def test_inline_in_a_plugin_test_as_decorator(jobs_module: pytest.Pytester) -> None:
    jobs_module.makepyfile('''
        import anyio
        from activejob.testing import inline
        from plugin_jobs import Mail

        @inline()
        def test_sync(tmp_path):
            assert tmp_path.exists()  # fixtures still reach the decorated test
            assert Mail.perform_later(to="flaky@example.com").attempts == 2

        def test_async():
            @inline()
            async def main():
                handle = await Mail.aperform_later(to="d@example.com")
                return handle.status
            assert anyio.run(main) == "completed"
    ''')
    jobs_module.runpytest_subprocess().assert_outcomes(passed=2)


def test_the_plugin_can_be_turned_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_it(enqueued): pass")
    result = pytester.runpytest_subprocess("-p", "no:activejob")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'enqueued' not found*"])
