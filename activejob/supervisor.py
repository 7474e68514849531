"""`activejob worker --processes N`: N worker processes, restarted when one dies.

Threads share one GIL, so CPU-bound jobs need processes. The supervisor passes
SIGTERM/SIGINT on to its children for a graceful stop, and stops restarting them.
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


class Supervisor:
    def __init__(self, argv: Sequence[str], processes: int, *, restart_delay: float = 1.0) -> None:
        self.argv = list(argv)
        self.processes = processes
        self.restart_delay = restart_delay
        self.children: list[subprocess.Popen[bytes]] = []
        self.stopping = False
        self.signals = 0

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "activejob", "worker", *self.argv, "--processes", "1"])

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        self.signals += 1
        # A second signal means "now": the children escalate the same way.
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signum)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.children = [self._spawn() for _ in range(self.processes)]
        log.info("supervising %d worker processes: %s", self.processes, [c.pid for c in self.children])
        while True:
            alive = 0
            for i, child in enumerate(self.children):
                code = child.poll()
                if code is None:
                    alive += 1
                elif not self.stopping:
                    log.warning("worker process %s exited with %s; starting another", child.pid, code)
                    time.sleep(self.restart_delay)
                    if not self.stopping:
                        self.children[i] = self._spawn()
                        alive += 1
            if self.stopping and alive == 0:
                return 0
            time.sleep(0.2)
