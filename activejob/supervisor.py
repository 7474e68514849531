"""`activejob worker --processes N`: N worker processes, restarted when one dies.

Threads share one GIL, so CPU-bound jobs need processes. The supervisor passes
SIGTERM/SIGINT on to its children for a graceful stop (a second signal: stop now), and
stops restarting them. Children run in their own process group, so a Ctrl-C in a
terminal reaches them once, through the supervisor, rather than twice (which would
mean "stop now").

A child that dies is restarted, after a delay that doubles while it keeps dying young
(within STABLE_AFTER seconds of its start). Some failures a restart cannot mend, and
restarting forever would only bury the error under a stream of new attempts:

- a child that exits with EX_CONFIG (an `--import` module does not import) or USAGE_ERROR
  (the command line or a setting is invalid) would fail the same way every time: the
  supervisor stops the other children and exits with that code at once;
- a child that dies young MAX_FAST_FAILURES times in a row (say, a database that is not
  there at start-up) makes the supervisor give up too, with exit code 1: a process manager
  may try again later, when what was missing may be back.

A child that ran stably and then crashed is news, not the same failure again: it is
restarted after the first delay, and its count of failures starts over.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

from . import clock

log = logging.getLogger("activejob.supervisor")

EX_CONFIG = 78  # sysexits.h; a worker exits with it when an --import module fails to import
USAGE_ERROR = 2  # click's exit code for an invalid command line; the worker's for an invalid setting
NOT_RESTARTED = {EX_CONFIG: "EX_CONFIG: a configuration error, such as an --import module that does not import",
                 USAGE_ERROR: "an invalid option or setting"}

RESTART_DELAY = 1.0  # before the first restart of a child; doubles while it keeps dying young
MAX_DELAY = 30.0
STABLE_AFTER = 10.0  # a child that lived this long was working: its death is not a start-up failure
MAX_FAST_FAILURES = 10  # deaths within STABLE_AFTER in a row (per child) before giving up: some
# three minutes of delays, long enough for a database restart, short enough to be noticed


class Supervisor:
    def __init__(self, argv: Sequence[str], processes: int, *, restart_delay: float | None = None,
                 global_argv: Sequence[str] = ()) -> None:
        self.argv = list(argv)
        self.global_argv = list(global_argv)
        self.processes = processes
        self.restart_delay = RESTART_DELAY if restart_delay is None else restart_delay
        self.children: list[subprocess.Popen[bytes] | None] = []
        self.started: list[float] = []
        self.delays: list[float] = []
        self.fast_failures: list[int] = []
        self.restart_at: list[float | None] = []
        self.stopping = False
        self.signals = 0
        self.exit_code = 0
        self.failure: str | None = None  # why it gave up, for the command to print

    def _start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "activejob", *self.global_argv, "worker", *self.argv, "--processes", "1"],
            process_group=0,
        )

    def _spawn(self, i: int) -> None:
        self.children[i] = self._start()
        self.started[i] = clock.monotonic()
        self.restart_at[i] = None

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        self.signals += 1
        # A second signal means "now": the children escalate the same way.
        for child in self.children:
            if child is not None and child.poll() is None:
                child.send_signal(signum)

    def run(self) -> int:
        """Supervise until every child has stopped; the exit code: 0 after a signal, else
        that of the failure that made it give up (see `failure`)."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self._setup()
        try:
            for i in range(self.processes):
                self._spawn(i)
            log.info("supervising %d worker processes: %s", self.processes, [c.pid for c in self.children if c])
            while True:
                alive = self._tend()
                if self.stopping and alive == 0:
                    return self.exit_code
                time.sleep(0.1)
        finally:
            self._kill_leftovers()

    def _setup(self) -> None:
        n = self.processes
        self.children, self.started, self.restart_at = [None] * n, [0.0] * n, [None] * n
        self.delays, self.fast_failures = [self.restart_delay] * n, [0] * n

    def _tend(self) -> int:
        alive = 0
        now = clock.monotonic()
        for i, child in enumerate(self.children):
            if child is not None and child.poll() is None:
                alive += 1
                continue
            if self.stopping:
                continue
            if child is not None:
                self.children[i] = None
                self._plan_restart(i, child, now)
                if self.stopping:  # gave up
                    continue
            restart_at = self.restart_at[i]
            if restart_at is not None and now >= restart_at:
                self._spawn(i)
                alive += 1
        return alive

    def _plan_restart(self, i: int, child: subprocess.Popen[bytes], now: float) -> None:
        code, lived = child.returncode, now - self.started[i]
        if code in NOT_RESTARTED:
            self._give_up(code, f"worker process {child.pid} exited with {code} ({NOT_RESTARTED[code]}), which "
                                "a restart cannot mend: see the error it printed above")
            return
        if lived >= STABLE_AFTER:
            self.delays[i], self.fast_failures[i] = self.restart_delay, 0
        else:
            self.fast_failures[i] += 1
            if self.fast_failures[i] >= MAX_FAST_FAILURES:
                self._give_up(1, f"worker processes keep failing at start-up: one died within {STABLE_AFTER:g}s "
                                 f"of starting {self.fast_failures[i]} times in a row (last exit code {code}); "
                                 "see the error it printed above, or run `activejob worker` without "
                                 "--processes to see it alone")
                return
        delay = self.delays[i]
        self.delays[i] = min(delay * 2, MAX_DELAY)
        log.warning("worker process %s exited with %s after %.1fs; starting another in %.1fs",
                    child.pid, code, lived, delay)
        self.restart_at[i] = now + delay

    def _give_up(self, code: int, reason: str) -> None:
        self.exit_code, self.failure, self.stopping = code, reason, True
        others = [c for c in self.children if c is not None and c.poll() is None]
        if others:
            # Healthy siblings still get their graceful stop: their running jobs finish or go back.
            log.error("%s; stopping the other %d worker process(es)", reason, len(others))
        for child in others:
            child.send_signal(signal.SIGTERM)

    def _kill_leftovers(self) -> None:
        """Never leave children behind (the supervisor itself failed or was interrupted)."""
        left = [c for c in self.children if c is not None and c.poll() is None]
        for child in left:
            child.terminate()
        deadline = clock.monotonic() + 5
        for child in left:
            try:
                child.wait(max(0.0, deadline - clock.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
