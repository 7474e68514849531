"""An activejob worker process with settings that `activejob worker` has no flag for:
`python -m bench.aj_worker --database-url URL [--concurrency 4] [--poll-interval 1.0]
[--sqlite-synchronous FULL] [--retention-days N]`.

It does what the CLI does (import the job module, `activejob.configure(...)`, `queue.work()`)
with those extra settings, and refuses to start (exit 3, with the reason on stderr) when a
setting it was given does not take effect: a benchmark row labelled `sqlite_synchronous=FULL`
must not silently measure NORMAL. `--retention-days` lets the scale benchmark keep a worker's
own prune chore (which runs as soon as a worker starts) away from the rows that an outside
`activejob prune` is timed on.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from datetime import timedelta
from typing import Any

NOT_EFFECTIVE = 3
PRAGMA_VALUES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


class NotEffective(RuntimeError):
    """A setting was accepted (or refused) but the store does not apply it."""


def effective_sqlite_synchronous(queue: Any) -> str:
    """What `PRAGMA synchronous` a SQLite store's connections actually run with."""
    with queue.store.engine.connect() as conn:
        value = conn.exec_driver_sql("PRAGMA synchronous").scalar()
    return PRAGMA_VALUES.get(int(value), str(value))


def configure_checked(url: str, sqlite_synchronous: str | None = None, **options: Any) -> Any:
    """`activejob.configure(url, ...)`, raising NotEffective when `sqlite_synchronous` is not
    a known setting yet or is accepted without reaching the store's connections."""
    import activejob
    from activejob.errors import ConfigurationError

    if sqlite_synchronous is not None:
        options["sqlite_synchronous"] = sqlite_synchronous
    try:
        queue = activejob.configure(url, **options)
    except ConfigurationError as error:
        if sqlite_synchronous is not None and "sqlite_synchronous" in str(error):
            raise NotEffective(f"activejob does not accept sqlite_synchronous yet: {error}") from None
        raise
    if sqlite_synchronous is not None and queue.store.dialect == "sqlite":
        got = effective_sqlite_synchronous(queue)
        if got != sqlite_synchronous.upper():
            queue.close()
            raise NotEffective(
                f"activejob accepts sqlite_synchronous={sqlite_synchronous!r} but its store's connections run "
                f"with synchronous={got} (JobQueue does not pass the setting to Store yet)")
    return queue


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.aj_worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--import", dest="imports", action="append", default=None,
                        help="job modules to import (default: bench.jobs)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--sqlite-synchronous", choices=["NORMAL", "FULL"], default=None)
    parser.add_argument("--retention-days", type=float, default=None,
                        help="retention of finished jobs and events (default: activejob's)")
    args = parser.parse_args(argv)
    for module in args.imports or ["bench.jobs"]:
        importlib.import_module(module)
    options: dict[str, Any] = {"concurrency": args.concurrency, "poll_interval": args.poll_interval}
    if args.retention_days is not None:
        keep = timedelta(days=args.retention_days)
        options["retention"] = {"completed": keep, "failed": keep, "cancelled": keep}
        options["event_retention"] = keep
    try:
        queue = configure_checked(args.database_url, args.sqlite_synchronous, **options)
    except NotEffective as error:
        print(f"bench.aj_worker: {error}", file=sys.stderr, flush=True)
        return NOT_EFFECTIVE
    queue.work()
    return 0


if __name__ == "__main__":
    sys.exit(main())
