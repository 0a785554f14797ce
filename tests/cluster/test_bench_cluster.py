"""`python -m bench.fanout` runs end to end on one node and on the session's cluster."""

from __future__ import annotations

import orjson
import pytest

from bench import fanout
from tests.settings import TEST_REDIS_DB, redis_test_url


@pytest.mark.parametrize("topology", ["node", "cluster"])
def test_the_fanout_bench_runs_and_measures_the_fresh_key_floor(
    topology: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    if topology == "cluster":
        target = ["--cluster-url", str(request.getfixturevalue("redis_cluster_url"))]
        label = "redis-benchmark --cluster LPUSH -P 100"
    else:
        monkeypatch = request.getfixturevalue("monkeypatch")
        monkeypatch.setenv("REDIS_URL", redis_test_url())
        target = ["--db", str(TEST_REDIS_DB)]
        label = "redis-benchmark LPUSH -P 100"
    # Enough requests that even one node's fastest run lasts long enough to be timed.
    fanout.main(
        [
            *target, "--sizes", "300", "--full-sizes", "200", "--max-length", "20",
            "--repeat", "1", "--batch-size", "100", "--reference-requests", "50000",
            "--paired-requests", "50000", "--floor-requests", "50000",
        ]
    )  # fmt: skip

    out = capsys.readouterr().out
    assert label in out
    assert "fresh-key floor: the same, one new key per request" in out
    summary = orjson.loads(out.strip().splitlines()[-1])
    assert summary["mode"] == topology.replace("node", "single")
    assert summary["fresh_key_floor_rps"] > 0
    assert [(s["feeds"], s["state"]) for s in summary["scenarios"]] == [
        (300, "fresh"),
        (200, "full"),
    ]
    for s in summary["scenarios"]:
        assert s["entries_per_second"] > 0 and s["ratio"] > 0
        assert s["client_cpu_usec_per_entry"] > 0
        expected = s["entries_per_second"] / summary["fresh_key_floor_rps"]
        assert s["of_fresh_key_floor"] == pytest.approx(expected, rel=1e-3)
