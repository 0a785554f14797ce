"""`python -m bench.tracing_cost` times the tracing calls off and on, and leaves tracing off."""

from __future__ import annotations

import orjson
import pytest

from bench import tracing_cost
from contracts import tracing


def test_bench_reports_the_cost_off_and_on_and_leaves_tracing_off(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # WHEN the benchmark runs a few thousand rounds
    tracing_cost.main(["--rounds", "2000", "--repeat", "1"])
    # THEN its last line has both sides, recording spans costing more than the no-op
    result = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["floor_ns"] > 0 and result["off_log_line_ns"] > 0
    assert result["on_helpers_ns"] > result["off_helpers_ns"]
    assert result["on_helpers_and_one_write_ns"] > 0
    # AND tracing is off again for whatever runs next
    assert not tracing.active()
