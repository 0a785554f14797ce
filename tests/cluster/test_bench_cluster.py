"""`python -m bench.fanout --cluster` runs end to end, on the session's cluster."""

from __future__ import annotations

import orjson
import pytest

from bench import fanout


def test_the_fanout_bench_runs_on_a_cluster(
    redis_cluster_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fanout.main(
        [
            "--cluster-url", redis_cluster_url, "--sizes", "300", "--full-sizes", "200",
            "--max-length", "20", "--repeat", "1", "--batch-size", "100",
            "--reference-requests", "2000", "--paired-requests", "1000",
        ]
    )  # fmt: skip

    out = capsys.readouterr().out
    assert "redis-benchmark --cluster LPUSH -P 100" in out
    summary = orjson.loads(out.strip().splitlines()[-1])
    assert summary["mode"] == "cluster"
    assert [(s["feeds"], s["state"]) for s in summary["scenarios"]] == [
        (300, "fresh"),
        (200, "full"),
    ]
    assert all(s["entries_per_second"] > 0 and s["ratio"] > 0 for s in summary["scenarios"])
