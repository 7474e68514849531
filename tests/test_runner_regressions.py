"""Bugs the runner once had, kept from coming back."""

from __future__ import annotations

from pydantic import BaseModel

from activejob import BaseJob, JobQueue, job


class Args(BaseModel):
    n: int


@job("regress_flaky_twice", schema=Args, max_retries=5, backoff="fixed", backoff_base=0)
class FlakyTwice(BaseJob[Args]):
    def perform(self, args: Args) -> int:
        if self.attempt < 3:
            raise ConnectionError("try again")
        return args.n


def test_retries_due_at_once_run_again_under_the_same_id_and_finish(queue: JobQueue) -> None:
    # The retry is claimed again while the failed attempt's task is still winding down;
    # the old attempt must not take the new one's place in the runner's books.
    handles = [FlakyTwice.perform_later(n=n) for n in range(3)]
    queue.run_until_idle()
    for handle in handles:
        info = queue.get_job(handle.id)
        assert info is not None and (info.status, info.attempts) == ("completed", 3)
