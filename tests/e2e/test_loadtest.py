"""`socialpipe loadtest` end to end: a short smoke run, its samples, and SLO exit codes."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from loadtest.broker import BrokerError, broker_binary
from loadtest.latency import summarize
from store.db import drop_database, with_database
from tests.e2e.test_demo import socialpipe
from tests.settings import SettingsFactory, make_settings

LOAD_DB = f"socialpipe_loadtest_e2e_{os.getpid()}"
SMALL_GRAPH = ["--users", "300", "--median-connections", "8", "--hub-connections", "250"]


@pytest.fixture
async def load_database(settings_factory: SettingsFactory) -> AsyncIterator[str]:
    url = with_database(settings_factory().database_url, LOAD_DB)
    yield LOAD_DB
    await drop_database(url)


def bus_args(transport: str) -> list[str]:
    """Options that start the transport's own emulator or broker on loopback."""
    if transport == "kafka":
        try:
            broker_binary()
        except BrokerError as exc:
            pytest.skip(f"the tansu Kafka broker cannot run here: {exc}")
        return ["--transport", "kafka"]
    return ["--transport", "sqs", "--emulator", "auto"]


def run_loadtest(
    database: str, out: Path, *args: str, transport: str = "sqs"
) -> subprocess.CompletedProcess[str]:
    cfg = make_settings()
    env = {**os.environ, "DATABASE_URL": cfg.database_url, "REDIS_URL": cfg.redis_url}
    env.pop("AWS_ENDPOINT_URL", None)
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    # tansu holds a group join for the whole rebalance timeout: keep the start short.
    env["KAFKA_REBALANCE_TIMEOUT_SECONDS"] = "1"
    return subprocess.run(
        [socialpipe(), "loadtest", *SMALL_GRAPH, *bus_args(transport), "--database", database,
         "--out", str(out), *args],
        env=env, capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip


def last_json(stdout: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])["loadtest"]
    return data


@pytest.mark.parametrize("transport", ["sqs", "kafka"])
def test_smoke_run_reports_latencies_from_real_observations(
    load_database: str, tmp_path: Path, transport: str
) -> None:
    # GIVEN a small graph, 240 posts/min and 20 profile updates/s for 3 + 12 seconds
    # WHEN it runs over the transport, on an emulator or broker of its own
    done = run_loadtest(
        load_database, tmp_path, "--posts-per-minute", "240", "--profile-updates-per-second",
        "20", "--warmup", "3", "--duration", "12", transport=transport,
    )  # fmt: skip
    # THEN it succeeds within the seed's SLOs
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    report = last_json(done.stdout)
    full = json.loads((tmp_path / "last-loadtest.json").read_text())
    # AND the JSON line, the full report and the table name the transport
    assert report["transport"] == full["transport"] == transport
    assert f"socialpipe loadtest over {transport}" in done.stdout
    for name, offered in (("posts", 60), ("profile updates", 300)):
        stream, samples = report["streams"][name], full["streams"][name]["samples"]
        # every offered event was sent, and the measured ones are those after the warm-up
        assert stream["offered"] == stream["sent"] == offered
        assert stream["not_visible"] == 0 and stream["errors"] == 0
        assert 0 < stream["measured"] == len(samples) < offered
        # samples occur inside the measured window, with positive latencies
        assert all(0 <= at <= 12.5 and 0 < lat < 5 for at, lat in samples)
        # they were recorded as they became visible: occurredAt + latency never goes back
        seen = [at + lat for at, lat in samples]
        assert all(b >= a - 0.002 for a, b in itertools.pairwise(seen))
        # and the reported percentiles are those of the recorded samples
        summary = summarize([lat for _, lat in samples])
        assert summary.p95 is not None
        assert stream["latency_ms"]["p95"] == pytest.approx(summary.p95 * 1000, abs=0.1)
    assert report["dlq"] == {"feed-fanout": 0, "search-indexing": 0, "notifications": 0}
    # AND the backlog is the queue depth on SQS and the consumer lag per group on Kafka
    backlog = "backlog" if transport == "sqs" else "consumer_lag"
    assert {f"{backlog}_at_end", f"{backlog}_max"} <= report.keys()
    assert {"feed-fanout", "search-indexing"} <= report[f"{backlog}_max"].keys()
    assert Path(report["picture"]).is_file()


def test_missed_slo_exits_1_with_a_sentence(load_database: str, tmp_path: Path) -> None:
    # GIVEN an SLO no real system meets (P95 under a microsecond)
    # WHEN a two-second run is measured against it
    done = run_loadtest(
        load_database, tmp_path, "--warmup", "0", "--duration", "2",
        "--slo-feed-p95", "0.000001", "--slo-search-p95", "60",
    )  # fmt: skip
    # THEN it exits 1 naming the stream that missed, and the JSON says so
    assert done.returncode == 1, done.stderr[-3000:]
    assert "SLO missed for posts." in done.stderr
    report = last_json(done.stdout)
    assert report["slo_met"] is False
    assert report["streams"]["posts"]["slo_met"] is False
    assert report["streams"]["profile updates"]["slo_met"] is True
