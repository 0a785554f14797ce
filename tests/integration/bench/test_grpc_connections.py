"""`python -m bench.grpc_connections` runs end to end on a small read and reports the ratio."""

from __future__ import annotations

import os

import orjson
import pytest

from bench import grpc_connections

DATABASE = f"socialpipe_test_bench_grpc_{os.getpid()}"


def test_bench_compares_the_grpc_read_with_the_direct_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # WHEN the benchmark reads 6,000 ids both ways
    grpc_connections.main(["--connections", "6000", "--repeat", "2", "--database", DATABASE])
    # THEN its last line reports both medians and their ratio
    result = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["connections"] == 6000
    assert result["direct_ms"] > 0 and result["grpc_ms"] > 0
    assert (
        result["ratio"] == round(result["direct_ms"] / result["grpc_ms"], 3) or result["ratio"] > 0
    )
