"""`python -m bench.api_abuse` runs end to end on a small index and reports both P95s."""

from __future__ import annotations

import asyncio
import os

import orjson
import pytest

from bench import api_abuse
from store.db import drop_database, with_database
from tests.settings import environment_settings, redis_test_url

DATABASE = f"socialpipe_test_api_abuse_{os.getpid()}"


def test_api_abuse_reports_a_normal_querys_p95_alone_and_beside_the_worst_query(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the test Redis database and a database of the test's own
    monkeypatch.setenv("REDIS_URL", redis_test_url())
    try:
        # WHEN the bench alternates two 1-second idle and abused windows over 500 profiles
        args = "--users 500 --duration 2 --rounds 2 --rate 10 --samples 1 --database"
        code = api_abuse.main([*args.split(), DATABASE])
    finally:
        asyncio.run(drop_database(with_database(environment_settings().database_url, DATABASE)))
    # THEN it found the worst allowed query, every normal request answered 200, and
    # both P95s and their ratio are reported
    assert code == 0
    report = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["worst_query"] in api_abuse.candidates("u")
    assert report["normal_statuses"] == {"200": report["normal_requests"]}
    assert report["normal_requests"] == 40
    assert report["abusive_requests"] > 0
    assert report["idle_p95_ms"] > 0 and report["abused_p95_ms"] > 0
    assert report["ratio"] == pytest.approx(report["abused_p95_ms"] / report["idle_p95_ms"], 0.05)
    assert report["api_error_lines"] == 0
