"""Output for people and for scripts: tables on a terminal, JSON (or a JSON document a line)
elsewhere."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NoReturn, TypeVar

import click


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def echo_line(data: Any) -> None:
    click.echo(json.dumps(data, default=str))  # one document a line, for a stream


_F = TypeVar("_F", bound=Callable[..., Any])

interval_option = click.option("--interval", type=click.FloatRange(min=0.05), default=0.5, show_default=True,
                               help="Seconds between looks for new events, with --follow.")


def follow_until(look: Callable[[], int | None], interval: float) -> NoReturn:
    """`--follow`: call `look` (which prints what is new) every `interval` seconds until it
    gives an exit code, and exit with it; 130 on Ctrl-C."""
    try:
        while (code := look()) is None:
            time.sleep(interval)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code)


def json_option(*, table_by_default: bool) -> Callable[[_F], _F]:
    """`--json` and `--table` on a read command. Commands that always printed JSON (stats, show,
    workers, types) still do when their output goes to a pipe or file, so scripts keep working;
    on a terminal they print a table."""
    def decorate(command: _F) -> _F:
        command = click.option("--table", "as_table", is_flag=True,
                               help="Print a table (for people).")(command)
        default = "table" if table_by_default else "a table on a terminal, else JSON"
        return click.option("--json", "as_json", is_flag=True,
                            help=f"Print JSON (for scripts); default: {default}.")(command)
    return decorate


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def wants_json(as_json: bool, as_table: bool, *, table_by_default: bool) -> bool:
    if as_json and as_table:
        raise click.UsageError("--json and --table: pick one")
    if as_json or as_table:
        return as_json
    return not (table_by_default or stdout_is_terminal())


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [list(headers), *[["" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def show_time(value: datetime | str | None) -> str:
    if value is None:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.strftime("%Y-%m-%d %H:%M:%S")
