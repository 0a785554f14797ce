"""The demo's report: JSON figures in milliseconds and the printed table."""

from __future__ import annotations

import io

from rich.console import Console

from cli.demo import report_table
from loadtest.demo import DemoReport
from loadtest.latency import summarize


def _report(samples: list[float]) -> DemoReport:
    return DemoReport(
        users=50,
        connections=180,
        posts=len(samples),
        feed_entries_expected=200,
        feed_entries_written=200,
        latency=summarize(samples),
        not_visible=0,
        dlq=0,
        elapsed_seconds=4.567,
    )


def test_json_figures_are_milliseconds() -> None:
    data = _report([0.040, 0.050, 0.3]).to_dict()
    assert data["latency"] == {"count": 3, "p50": 50.0, "p95": 300.0, "p99": 300.0, "max": 300.0}
    assert data["latency_unit"] == "ms"
    assert data["elapsed_seconds"] == 4.57


def test_table_shows_p95_or_says_there_is_none() -> None:
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(report_table(_report([0.1])))
    console.print(report_table(_report([])))
    text = console.export_text()
    assert "P95 post → last feed" in text
    assert "100 ms" in text
    assert "n/a" in text
