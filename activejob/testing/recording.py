"""Recording the signals activejob sends: `recorded_signals()` and the `SignalLog` it fills.

    with recorded_signals() as log:
        SendEmail.perform_now(to="a@example.com", subject="Hi")
    assert log.names() == ["job_started", "job_completed"]
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from blinker import ANY, NamedSignal

from .. import signals

ALL_SIGNALS: tuple[NamedSignal, ...] = signals.ALL_SIGNALS
"""Every signal activejob sends, in the order of `activejob.signals`."""


_EVERY_JOB = object()


class SignalLog(list[tuple[str, dict[str, Any]]]):
    """The `(signal name, payload)` pairs `recorded_signals()` saw, in the order sent."""

    def names(self, job_id: int | object | None = _EVERY_JOB, *, status_changed: bool = False) -> list[str]:
        """The signal names, for one job if `job_id` is given (`None` picks `perform_now` runs).

        `job_status_changed`, sent beside every status signal, is left out unless asked for.
        """
        return [
            name for name, payload in self
            if (job_id is _EVERY_JOB or payload.get("job_id") == job_id)
            and (status_changed or name != "job_status_changed")
        ]

    def payloads(self, name: str) -> list[dict[str, Any]]:
        """The payloads of one signal: `log.payloads("job_progress")`."""
        return [payload for n, payload in self if n == name]


def _signal_name(item: str | NamedSignal) -> str:
    name = item if isinstance(item, str) else item.name
    if name not in {s.name for s in ALL_SIGNALS}:
        known = ", ".join(s.name for s in ALL_SIGNALS)
        raise ValueError(f"{name!r} is not an activejob signal; use one of {known}")
    return name


def _recorder(name: str, log: SignalLog, lock: threading.Lock) -> Callable[..., None]:
    def receiver(_sender: Any, **payload: Any) -> None:
        with lock:
            log.append((name, payload))

    return receiver


@contextmanager
def recorded_signals(*only: str | NamedSignal, exclude: Sequence[str | NamedSignal] = ()) -> Iterator[SignalLog]:
    """Record every activejob signal sent inside the block, from any sender and thread.

        with recorded_signals() as log:
            SendEmail.perform_now(to="a@example.com", subject="Hi")
        assert log.names() == ["job_started", "job_completed"]
        assert log.payloads("job_completed")[0]["result"] == {"sent": True}

    Pass signals (or their names) to record only those, or `exclude=` to leave some out.
    """
    wanted = {_signal_name(s) for s in only} or {s.name for s in ALL_SIGNALS}
    wanted -= {_signal_name(s) for s in exclude}
    log = SignalLog()
    lock = threading.Lock()
    receivers: list[tuple[NamedSignal, Any]] = []
    for signal in ALL_SIGNALS:
        if signal.name in wanted:
            receiver = _recorder(signal.name, log, lock)
            signal.connect(receiver, sender=ANY, weak=False)
            receivers.append((signal, receiver))
    try:
        yield log
    finally:
        for signal, receiver in receivers:
            signal.disconnect(receiver)
