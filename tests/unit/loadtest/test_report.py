"""The load report: JSON figures, SLO verdicts, the table and the picture."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from loadtest.report import (
    LoadReport,
    StreamResult,
    draw,
    report_table,
    stream_result,
    summary_lines,
)


def _stream(
    latencies: list[float],
    slo: float | None,
    name: str = "posts",
    *,
    not_visible: int = 0,
    trimmed: int = 0,
) -> StreamResult:
    samples = [(100.0 + i, lat) for i, lat in enumerate(latencies)]
    return stream_result(
        name, "all feeds", offered=len(samples), sent=len(samples), samples=samples,
        measure_from=100.0, window=10.0, not_visible=not_visible, errors=0, first_error=None,
        slo_p95=slo, trimmed=trimmed,
    )  # fmt: skip


def _report(*streams: StreamResult, dlq: int = 0) -> LoadReport:
    return LoadReport(
        scenario={"users": 10, "workers": 1},
        streams=streams,
        backlog_at_end={"feed-fanout": 0},
        backlog_max={"feed-fanout": 3},
        dlq={"feed-fanout": dlq},
        worker_errors={},
        machine={"cores": 2, "load_before": "0.1", "load_after": "0.2"},
        elapsed_seconds=12.345,
    )


def test_warm_up_samples_are_left_out_and_times_are_relative() -> None:
    # GIVEN samples before and after the end of the warm-up at t=100
    samples = [(99.5, 9.0), (100.5, 0.2), (101.0, 0.1)]
    # WHEN the stream result is built
    result = stream_result(
        "posts", "all feeds", offered=3, sent=3, samples=samples, measure_from=100.0,
        window=2.0, not_visible=0, errors=0, first_error=None, slo_p95=None,
    )  # fmt: skip
    # THEN only the two measured events count, relative to the warm-up's end
    assert result.measured == 2
    assert result.samples == ((0.5, 0.2), (1.0, 0.1))
    assert result.latency.max == 0.2
    assert result.achieved_per_second == 1.0


def test_json_figures_are_milliseconds_and_carry_the_verdict() -> None:
    data = _report(_stream([0.040, 0.050, 0.3], slo=0.5)).to_dict()
    posts = data["streams"]["posts"]
    assert posts["latency_ms"] == {
        "count": 3,
        "p50": 50.0,
        "p95": 300.0,
        "p99": 300.0,
        "max": 300.0,
    }
    assert posts["slo_p95_ms"] == 500.0
    assert posts["slo_met"] is True
    assert "samples" not in posts
    assert data["slo_met"] is True
    assert data["elapsed_seconds"] == 12.35


def test_full_json_lists_every_sample_in_seen_order() -> None:
    data = _report(_stream([0.2, 0.1], slo=None)).to_dict(samples=True)
    assert data["streams"]["posts"]["samples"] == [[0.0, 0.2], [1.0, 0.1]]


def test_p95_above_the_slo_misses_it() -> None:
    report = _report(_stream([0.1] * 94 + [0.9] * 6, slo=0.5))
    assert report.streams[0].slo_met is False
    assert report.slo_met is False


def test_nothing_measured_misses_an_slo_but_not_an_absent_one() -> None:
    assert _stream([], slo=1.0).slo_met is False
    assert _stream([], slo=None).slo_met is None


def test_dead_letters_make_a_run_unclean() -> None:
    assert _report(_stream([0.1], slo=None)).clean
    assert not _report(_stream([0.1], slo=None), dlq=2).clean


def test_posts_trimmed_before_seen_are_reported_apart_and_lose_nothing() -> None:
    # GIVEN a run where 7 posts were trimmed before seen and none went missing
    report = _report(_stream([0.1], slo=None, trimmed=7))
    # THEN the JSON carries both figures, the run is clean, and a line explains the figure
    posts = report.to_dict()["streams"]["posts"]
    assert (posts["trimmed_before_seen"], posts["not_visible"]) == (7, 0)
    assert report.clean
    assert any(line.startswith("trimmed before seen: 7 post(s)") for line in summary_lines(report))
    # WHEN one post is never visible as well
    lost = _report(_stream([0.1], slo=None, not_visible=1, trimmed=7))
    # THEN that one makes the run unclean
    assert not lost.clean
    assert not any("trimmed" in line for line in summary_lines(_report(_stream([0.1], None))))


def test_table_shows_p95_per_stream_or_says_there_is_none() -> None:
    console = Console(width=120, record=True, file=io.StringIO())
    report = _report(_stream([0.1], slo=2.0), _stream([], slo=None, name="profile updates"))
    console.print(report_table(report))
    text = console.export_text()
    assert "posts → all feeds" in text
    assert "100 ms" in text
    assert "n/a" in text
    assert "met (P95 ≤ 2000 ms)" in text
    assert "trimmed before seen" in text


def test_picture_is_a_png(tmp_path: Path) -> None:
    # GIVEN a report with samples in both streams
    report = _report(_stream([0.1, 0.2, 0.15], slo=0.5), _stream([0.3], 5.0, "profile updates"))
    # WHEN it is drawn
    path = draw(report, tmp_path / "sub" / "run.png")
    # THEN a PNG file is written
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
