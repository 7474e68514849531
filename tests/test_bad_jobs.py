"""One bad job never stops a worker: whatever a job raises, reports or refuses to stop
for ends that job alone, and the worker goes on (and stops when told)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import jobs_for_workers as wk
import pytest
from pydantic import BaseModel
from runner_support import job_info, sql, wait_for

import activejob
from activejob import BaseJob, JobQueue, NoArgs, job


class Text(BaseModel):
    text: str  # "<S>" stands for a lone surrogate, "<NUL>" for NUL: arguments cannot carry either

    def raw(self) -> str:
        return self.text.replace("<S>", "\udcff").replace("<NUL>", "\x00")


@job("bad_error_text", schema=Text, max_retries=0)
class BadErrorText(BaseJob[Text]):
    def perform(self, args: Text) -> None:
        raise ValueError(args.raw())


@job("bad_progress_text", schema=Text, max_retries=0)
class BadProgressText(BaseJob[Text]):
    async def perform(self, args: Text) -> None:
        self.progress(0.5, message=args.raw(), phase=args.raw())
        self.log(args.raw(), detail=args.raw())


@job("lone_surrogate_result", schema=Text, max_retries=2)
class LoneSurrogateResult(BaseJob[Text]):
    def perform(self, args: Text) -> dict[str, Any]:
        return {"file": args.raw(), args.raw(): [args.raw(), float("nan")]}


@job("ordinary")
class Ordinary(BaseJob[NoArgs]):
    def perform(self, args: NoArgs) -> str:
        return "done"


@job("poisoned_result")
class PoisonedResult(BaseJob[NoArgs]):
    def perform(self, args: NoArgs) -> str:
        return "poison"


def test_errors_with_lone_surrogates_or_nul_are_stored_escaped(queue: JobQueue) -> None:
    bad = [BadErrorText.perform_later(text=text) for text in ("lone <S> surrogate", "nul <NUL> byte")]
    ordinary = Ordinary.perform_all_later([{}] * 6)
    queue.run_until_idle()
    assert [job_info(queue, h.id).status for h in ordinary] == ["completed"] * 6
    errors = [job_info(queue, h.id) for h in bad]
    assert [e.status for e in errors] == ["failed", "failed"]
    assert errors[0].error == "ValueError: lone \\udcff surrogate"
    assert errors[1].error == "ValueError: nul \\x00 byte"


def test_a_result_with_a_lone_surrogate_completes_its_job_and_reads_back_exactly(queue: JobQueue) -> None:
    handle = LoneSurrogateResult.perform_later(text="caf<S>.txt")
    queue.run_until_idle()
    info = job_info(queue, handle.id)
    expected = {"file": "caf\udcff.txt", "caf\udcff.txt": ["caf\udcff.txt", None]}
    assert (info.status, info.attempts, info.result) == ("completed", 1, expected)
    assert [e.data["result"] for e in queue.events(handle.id) if e.type == "completed"] == [expected]


def test_progress_and_logs_with_unstorable_text_are_stored_escaped_and_cut(queue: JobQueue) -> None:
    handle = BadProgressText.perform_later(text="phase <S> <NUL> " + "x" * 300)
    ordinary = Ordinary.perform_all_later([{}] * 6)
    queue.run_until_idle()
    assert [job_info(queue, h.id).status for h in ordinary] == ["completed"] * 6
    info = job_info(queue, handle.id)
    assert info.status == "completed"
    progress = [e for e in queue.events(handle.id) if e.type == "progress"][-1]
    phase = progress.data["phase"]
    assert len(phase) <= 200 and phase.startswith("phase \\udcff \\x00 xx") and "characters, cut" in phase
    log = [e for e in queue.events(handle.id) if e.type == "log"][-1]
    assert log.data["detail"] == "phase \udcff \x00 " + "x" * 300  # JSON keeps any text, escaped


def _refuse_poison(url: str) -> None:
    """Make the database itself refuse one value: a job completing with the result "poison"."""
    if url.startswith("sqlite"):
        sql(url, "CREATE TRIGGER refuse_poison BEFORE UPDATE ON activejob_jobs "
                 "WHEN NEW.result = '\"poison\"' BEGIN SELECT RAISE(ABORT, 'refused: poison'); END")
        return
    sql(url, "CREATE OR REPLACE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN "
             "IF NEW.result = '\"poison\"' THEN RAISE EXCEPTION 'refused: poison' USING ERRCODE = '22000'; END IF; "
             "RETURN NEW; END $$ LANGUAGE plpgsql")
    sql(url, "DROP TRIGGER IF EXISTS refuse_poison ON activejob_jobs")
    sql(url, "CREATE TRIGGER refuse_poison BEFORE UPDATE ON activejob_jobs "
             "FOR EACH ROW EXECUTE FUNCTION refuse_poison()")


def test_an_outcome_the_database_refuses_fails_its_job_alone(queue: JobQueue, db_url: str) -> None:
    _refuse_poison(db_url)
    try:
        poisoned = PoisonedResult.perform_later()
        ordinary = Ordinary.perform_all_later([{}] * 6)
        queue.run_until_idle()
        assert [job_info(queue, h.id).status for h in ordinary] == ["completed"] * 6
        info = job_info(queue, poisoned.id)
        assert info.status == "failed"
        assert info.error is not None and info.error.startswith("OutcomeNotStored: the completed outcome")
        assert "refused: poison" in info.error
    finally:
        if not db_url.startswith("sqlite"):
            sql(db_url, "DROP TRIGGER IF EXISTS refuse_poison ON activejob_jobs")


@pytest.mark.parametrize("kind", ["exit", "interrupt", "base", "cancelled"])
@pytest.mark.parametrize("cls", [wk.WkRaiseBase, wk.WkRaiseBaseSync], ids=["async", "sync"])
def test_a_base_exception_from_perform_fails_that_job_only(queue: JobQueue, cls: Any, kind: str) -> None:
    bad = cls.perform_later(kind=kind)
    ordinary = Ordinary.perform_all_later([{}] * 3)
    queue.run_until_idle()  # returns: the worker was not stopped
    info = job_info(queue, bad.id)
    assert info.status == "failed"
    assert info.error.split(":")[0] in ("SystemExit", "KeyboardInterrupt", "Boom", "CancelledError")
    assert [job_info(queue, h.id).status for h in ordinary] == ["completed"] * 3


@pytest.fixture
def reader(db_url: str) -> Any:
    queue = activejob.configure(db_url, poll_interval=0.05)
    yield queue
    JobQueue.reset()


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_a_worker_process_outlives_a_job_that_raises_system_exit(reader: JobQueue, db_url: str, workers: Any) -> None:
    bad = [wk.WkRaiseBaseSync.perform_later(kind="exit"), wk.WkRaiseBase.perform_later(kind="interrupt")]
    worker = workers.start(db_url, "--concurrency", "2")
    wait_for(lambda: all(job_info(reader, h.id).status == "failed" for h in bad), 20, what="the bad jobs to fail")
    after = wk.WkQuick.perform_later(n=7)
    wait_for(lambda: job_info(reader, after.id).status == "completed", 20, what="the next job to run")
    assert worker.alive()
    assert job_info(reader, after.id).result == {"n": 7, "pid": worker.pid}
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", ["wk_ignore_cancel_sync", "wk_swallow_cancel"])
def test_sigterm_ends_a_worker_whose_job_ignores_cancellation(reader: JobQueue, db_url: str, workers: Any,
                                                              tmp_path: Path, name: str) -> None:
    handle = activejob.registry[name].perform_later(release=str(tmp_path / "never"), limit=120)
    worker = workers.start(db_url, "--shutdown-grace", "0.5", "--cancel-grace", "0.5")
    wait_for(lambda: job_info(reader, handle.id).status == "running")
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    worker.wait(30)
    # grace 0.5 s + cancel grace 0.5 s + at most the stop margin (5 s), and a little time to exit
    assert time.monotonic() - started < 9
    info = job_info(reader, handle.id)
    assert (info.status, info.attempts, info.worker_id) == ("pending", 0, None)


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_a_second_sigterm_ends_a_worker_whose_async_job_swallows_cancellation(
        reader: JobQueue, db_url: str, workers: Any, tmp_path: Path) -> None:
    handle = wk.WkSwallowCancel.perform_later(release=str(tmp_path / "never"), limit=120)
    worker = workers.start(db_url, "--shutdown-grace", "60")
    wait_for(lambda: job_info(reader, handle.id).status == "running")
    worker.signal(signal.SIGTERM)
    wait_for(lambda: "finishing running jobs" in worker.output(), what="the first signal to be handled")
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    worker.wait(20)
    assert time.monotonic() - started < 6
    info = job_info(reader, handle.id)
    assert (info.status, info.attempts) == ("pending", 0)
    assert "ignored its cancellation" in worker.output()


@job("bad_backoff_sync", max_retries=3, backoff=lambda attempt: 1 / 0)
class BadBackoffSync(BaseJob[NoArgs]):
    def perform(self, args: NoArgs) -> None:
        raise ValueError("boom")


@job("bad_backoff_async", max_retries=3, backoff=lambda attempt: float("nan"))
class BadBackoffAsync(BaseJob[NoArgs]):
    async def perform(self, args: NoArgs) -> None:
        raise ValueError("boom")


@pytest.mark.parametrize("cls", [BadBackoffSync, BadBackoffAsync], ids=["sync-raises", "async-nan"])
def test_a_backoff_that_fails_fails_the_job_saying_why(queue: JobQueue, cls: Any) -> None:
    handle = cls.perform_later()
    ordinary = Ordinary.perform_later()
    queue.run_until_idle()  # returns: the job did not stay running
    info = job_info(queue, handle.id)
    assert info.status == "failed"
    assert info.error.startswith("ValueError: boom (not retried: its backoff failed:")
    assert job_info(queue, ordinary.id).status == "completed"
