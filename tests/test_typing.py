"""The enqueue verbs are typed for users' type checkers: mypy --strict sees a JobHandle (not
Any) and checks a schema instance against the job's own schema.

The snippet below is checked by mypy in this process (`mypy.api.run`), with the project's
configuration and cache: a few seconds cold, well under one warm. A line ending in
`# E: code` must raise exactly that mypy error, and no other line any.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

ROOT = Path(__file__).resolve().parents[1]

SNIPPET = '''
from datetime import datetime, timedelta, timezone
from typing import assert_type

from pydantic import BaseModel

from activejob import BaseJob, ConfiguredJob, JobHandle, job


class EmailArgs(BaseModel):
    to: str


class OtherArgs(BaseModel):
    n: int


@job("typing_send_email", schema=EmailArgs)
class SendEmail(BaseJob[EmailArgs]):
    def perform(self, args: EmailArgs) -> None: ...


def sync_verbs() -> None:
    soon = datetime.now(timezone.utc) + timedelta(minutes=5)
    assert_type(SendEmail.perform_later(EmailArgs(to="a@b.c")), JobHandle)
    assert_type(SendEmail.perform_later(to="a@b.c"), JobHandle)
    assert_type(SendEmail.perform_at(soon, to="a@b.c"), JobHandle)
    assert_type(SendEmail.perform_in(timedelta(minutes=5), EmailArgs(to="a@b.c")), JobHandle)
    assert_type(SendEmail.perform_all_later([EmailArgs(to="a"), {"to": "b"}]), list[JobHandle])
    assert_type(SendEmail.set(queue="mail"), ConfiguredJob[EmailArgs])
    assert_type(SendEmail.set(queue="mail").perform_later(to="a@b.c"), JobHandle)
    assert_type(SendEmail.set(queue="mail").perform_all_later([EmailArgs(to="a")]), list[JobHandle])
    assert_type(SendEmail.perform_later(to="a@b.c").id, int)


async def async_verbs() -> None:
    assert_type(await SendEmail.aperform_later(to="a@b.c"), JobHandle)
    assert_type(await SendEmail.aperform_in(60, to="a@b.c"), JobHandle)
    assert_type(await SendEmail.aperform_at(datetime.now(timezone.utc), to="a@b.c"), JobHandle)
    assert_type(await SendEmail.aperform_all_later([{"to": "a"}]), list[JobHandle])
    assert_type(await SendEmail.set(wait=5).aperform_later(to="a@b.c"), JobHandle)


def mistakes() -> None:
    SendEmail.perform_later(OtherArgs(n=1))  # E: arg-type
    SendEmail.set(queue="mail").perform_later(OtherArgs(n=1))  # E: arg-type
    SendEmail.perform_in(timedelta(minutes=5), OtherArgs(n=1))  # E: arg-type
    SendEmail.perform_all_later([OtherArgs(n=1)])  # E: list-item
    SendEmail.perform_later(to="a@b.c").job_id  # E: attr-defined
'''


def test_the_enqueue_verbs_are_checked_against_the_jobs_schema(tmp_path: Path) -> None:
    source = tmp_path / "typed_usage.py"
    source.write_text(SNIPPET)
    stdout, stderr, _ = mypy_api.run([
        "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(ROOT / ".mypy_cache"),
        "--no-error-summary", "--show-error-codes", "--hide-error-context", str(source),
    ])
    assert not stderr, stderr
    found = {(int(line), code) for line, code in re.findall(r"typed_usage\.py:(\d+): error: .*\[([\w-]+)\]$",
                                                             stdout, re.MULTILINE)}
    expected = {(number, match.group(1)) for number, text in enumerate(SNIPPET.splitlines(), start=1)
                if (match := re.search(r"# E: ([\w-]+)$", text))}
    assert found == expected, stdout
