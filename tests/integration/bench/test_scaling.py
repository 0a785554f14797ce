"""`python -m bench.scaling` runs end to end on a tiny backlog and reports efficiency."""

from __future__ import annotations

import asyncio
import os
import shutil

import orjson
import pytest

from bench import scaling
from loadtest.emulator import fauxqs_available
from store.db import drop_database, with_database
from tests.settings import environment_settings, redis_test_url

DATABASE = f"socialpipe_test_scaling_{os.getpid()}"


# The emulator's output pipe is left to the garbage collector when it stops.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_scaling_reports_rates_cpu_and_efficiency_per_worker_count(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the test Redis database and a database of the test's own
    monkeypatch.setenv("REDIS_URL", redis_test_url())
    emulator = "fauxqs" if fauxqs_available() else "moto"
    # moto's server spends about 0.2 s of CPU per event here: a backlog it can hold
    # in time, still more than the workers drain in their windows.
    backlog = "2000" if emulator == "fauxqs" else "300"
    redis = "own" if shutil.which("redis-server") else "env"
    try:
        # WHEN one and then two feed workers run on a small backlog
        scaling.main(
            [
                "--workers", "1,2", "--backlog", backlog, "--users", "200", "--window", "1.5",
                "--warmup", "1", "--database", DATABASE, "--emulator", emulator,
                "--redis", redis,
            ]
        )  # fmt: skip
    finally:
        asyncio.run(drop_database(with_database(environment_settings().database_url, DATABASE)))

    # THEN each count has its rate, worker CPU and efficiency against one worker
    out = capsys.readouterr().out
    assert "2 cores" in out or f"{os.cpu_count()} cores" in out
    report = orjson.loads(out.strip().splitlines()[-1])
    assert report["pipeline"] == "feed"
    assert [r["workers"] for r in report["runs"]] == [1, 2]
    first, second = report["runs"]
    assert first["events"] > 0 and first["worker_cpu_s"] > 0
    assert first["efficiency"] == 1.0
    expected = second["events_per_worker_cpu_s"] / first["events_per_worker_cpu_s"]
    assert second["efficiency"] == pytest.approx(expected, abs=0.002)
    for run in report["runs"]:
        assert run["events_per_s"] > 0
        assert set(run["cores_used"]) == {
            "workers", "postgres", "redis", "emulator", "bench", "other"
        }  # fmt: skip
        assert 0 < run["machine_busy"] <= 1
