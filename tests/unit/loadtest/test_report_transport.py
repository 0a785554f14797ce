"""The load report names its transport, and the backlog as that transport measures it."""

from __future__ import annotations

from dataclasses import replace

from loadtest.report import _title, summary_lines
from tests.unit.loadtest.test_report import _report, _stream


def test_an_sqs_report_keeps_its_backlog_names() -> None:
    data = _report(_stream([0.1], slo=None)).to_dict()
    assert data["transport"] == "sqs"
    assert data["backlog_at_end"] == {"feed-fanout": 0}
    assert data["backlog_max"] == {"feed-fanout": 3}
    assert "consumer_lag_max" not in data


def test_a_kafka_report_calls_its_backlog_consumer_lag_everywhere() -> None:
    # GIVEN a run over Kafka whose backlog figures are consumer lag per group
    report = replace(_report(_stream([0.1], slo=None)), transport="kafka")
    # WHEN it is turned into JSON, summary lines and the picture's title
    data = report.to_dict(samples=True)
    lines = summary_lines(report)
    # THEN the fields say consumer lag, and the transport is named
    assert data["transport"] == "kafka"
    assert data["consumer_lag_at_end"] == {"feed-fanout": 0}
    assert data["consumer_lag_max"] == {"feed-fanout": 3}
    assert "backlog_max" not in data
    assert lines[0] == "consumer lag at end of load: feed-fanout 0"
    assert lines[1] == "consumer lag max seen: feed-fanout 3"
    assert _title(report).startswith("over kafka: ")
