from __future__ import annotations

import asyncio

import pytest
import typer

from cli.common import explain, run
from contracts.errors import TransientError


def test_failure_inside_a_task_group_is_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a command whose task group fails on an unreachable service
    async def command() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(asyncio.sleep(0))

            async def boom() -> None:
                raise ConnectionRefusedError(111, "Connection refused")

            tg.create_task(boom())

    # WHEN it runs THEN it exits 1 with one sentence, no traceback
    with pytest.raises(typer.Exit) as exited:
        run(command())
    err = capsys.readouterr().err
    assert exited.value.exit_code == 1
    assert err.startswith("socialpipe: a connection failed ([Errno 111] Connection refused).")
    assert "Traceback" not in err


def test_exhausted_retries_name_the_reason() -> None:
    assert explain(TransientError("Redis is unreachable")) == "Redis is unreachable."


def test_a_bug_is_not_disguised() -> None:
    assert explain(ExceptionGroup("x", [KeyError("k")])) is None
    with pytest.raises(KeyError):

        async def bug() -> None:
            raise KeyError("k")

        run(bug())


def test_an_os_error_that_is_not_a_connection_is_not_called_one() -> None:
    exc = PermissionError(13, "Permission denied", "report.json")
    assert explain(exc) == "[Errno 13] Permission denied: 'report.json'."
