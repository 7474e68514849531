"""`activejob worker --processes N`: N worker processes, restarted when one dies.

Threads share one GIL, so CPU-bound jobs need processes. The supervisor passes
SIGTERM/SIGINT on to its children for a graceful stop (a second signal: stop now), and
stops restarting them. Children run in their own process group, so a Ctrl-C in a
terminal reaches them once, through the supervisor, rather than twice (which would
mean "stop now"). A child that keeps dying at once is restarted with a growing delay.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

log = logging.getLogger("activejob.supervisor")

STABLE_AFTER = 10.0  # a child that lived this long resets the restart delay
MAX_DELAY = 30.0


class Supervisor:
    def __init__(self, argv: Sequence[str], processes: int, *, restart_delay: float = 1.0,
                 global_argv: Sequence[str] = ()) -> None:
        self.argv = list(argv)
        self.global_argv = list(global_argv)
        self.processes = processes
        self.restart_delay = restart_delay
        self.children: list[subprocess.Popen[bytes] | None] = []
        self.started: list[float] = []
        self.delays: list[float] = []
        self.restart_at: list[float | None] = []
        self.stopping = False
        self.signals = 0

    def _spawn(self, i: int) -> None:
        child = subprocess.Popen(
            [sys.executable, "-m", "activejob", *self.global_argv, "worker", *self.argv, "--processes", "1"],
            process_group=0,
        )
        self.children[i] = child
        self.started[i] = time.monotonic()
        self.restart_at[i] = None

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        self.signals += 1
        # A second signal means "now": the children escalate the same way.
        for child in self.children:
            if child is not None and child.poll() is None:
                child.send_signal(signum)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        n = self.processes
        self.children, self.started = [None] * n, [0.0] * n
        self.delays, self.restart_at = [self.restart_delay] * n, [None] * n
        try:
            for i in range(n):
                self._spawn(i)
            log.info("supervising %d worker processes: %s", n, [c.pid for c in self.children if c])
            while True:
                alive = self._tend()
                if self.stopping and alive == 0:
                    return 0
                time.sleep(0.1)
        finally:
            self._kill_leftovers()

    def _tend(self) -> int:
        alive = 0
        now = time.monotonic()
        for i, child in enumerate(self.children):
            if child is not None and child.poll() is None:
                alive += 1
                continue
            if self.stopping:
                continue
            if child is not None:  # it just died: plan its replacement
                lived = now - self.started[i]
                if lived >= STABLE_AFTER:
                    self.delays[i] = self.restart_delay
                delay = self.delays[i]
                self.delays[i] = min(delay * 2, MAX_DELAY)
                log.warning("worker process %s exited with %s after %.1fs; starting another in %.1fs",
                            child.pid, child.returncode, lived, delay)
                self.children[i] = None
                self.restart_at[i] = now + delay
            restart_at = self.restart_at[i]
            if restart_at is not None and now >= restart_at:
                self._spawn(i)
                alive += 1
        return alive

    def _kill_leftovers(self) -> None:
        """Never leave children behind (the supervisor itself failed or was interrupted)."""
        left = [c for c in self.children if c is not None and c.poll() is None]
        for child in left:
            child.terminate()
        deadline = time.monotonic() + 5
        for child in left:
            try:
                child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
