"""The load report: figures per stream, SLO verdicts, a table, JSON and a picture."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from rich.table import Table

from loadtest.latency import LatencySummary, summarize


@dataclass(frozen=True)
class StreamResult:
    """One kind of event (posts or profile updates) over the measured window."""

    name: str
    visible_as: str
    offered: int
    sent: int
    measured: int
    latency: LatencySummary
    not_visible: int
    errors: int
    first_error: str | None
    achieved_per_second: float
    slo_p95: float | None
    # Pushed into a feed and trimmed off it (FEED_MAX_LENGTH newer posts) before a
    # probe looked: latency unknown, not lost, so neither measured nor never visible.
    trimmed_before_seen: int = 0
    # (occurredAt relative to the start of load, latency), for the picture.
    samples: tuple[tuple[float, float], ...] = field(default=(), repr=False)

    @property
    def slo_met(self) -> bool | None:
        """None without an SLO; a missing P95 (nothing measured) misses it."""
        if self.slo_p95 is None:
            return None
        return self.latency.p95 is not None and self.latency.p95 <= self.slo_p95

    def to_dict(self, *, samples: bool = False) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "samples"}
        if samples:
            # [occurredAt after warm-up, latency] in seconds, in the order they became visible.
            data["samples"] = [[round(at, 4), round(lat, 4)] for at, lat in self.samples]
        data["latency_ms"] = {
            k: (round(v * 1000, 1) if isinstance(v, float) else v)
            for k, v in asdict(self.latency).items()
        }
        del data["latency"]
        data["slo_p95_ms"] = None if self.slo_p95 is None else round(self.slo_p95 * 1000, 1)
        del data["slo_p95"]
        data["achieved_per_second"] = round(self.achieved_per_second, 2)
        data["slo_met"] = self.slo_met
        return data


def stream_result(
    name: str,
    visible_as: str,
    *,
    offered: int,
    sent: int,
    samples: Sequence[tuple[float, float]],
    measure_from: float,
    window: float,
    not_visible: int,
    errors: int,
    first_error: str | None,
    slo_p95: float | None,
    trimmed: int = 0,
) -> StreamResult:
    """Keep the samples of events that occurred after the warm-up, relative to `measure_from`."""
    kept = tuple((at - measure_from, lat) for at, lat in samples if at >= measure_from)
    return StreamResult(
        name=name,
        visible_as=visible_as,
        offered=offered,
        sent=sent,
        measured=len(kept),
        latency=summarize([lat for _, lat in kept]),
        not_visible=not_visible,
        errors=errors,
        first_error=first_error,
        achieved_per_second=len(kept) / window if window > 0 else 0.0,
        slo_p95=slo_p95,
        trimmed_before_seen=trimmed,
        samples=kept,
    )


# What waits on the bus: queue depth on SQS, consumer lag on Kafka.
BACKLOG_KEYS: Final = {"sqs": "backlog", "kafka": "consumer_lag"}


def backlog_label(transport: str) -> str:
    """How the backlog of `transport` is named in reports and the progress line."""
    return BACKLOG_KEYS.get(transport, "backlog").replace("_", " ")


@dataclass(frozen=True)
class LoadReport:
    scenario: dict[str, Any]
    streams: tuple[StreamResult, ...]
    backlog_at_end: dict[str, int]
    backlog_max: dict[str, int]
    dlq: dict[str, int]
    worker_errors: dict[str, int]
    machine: dict[str, Any]
    elapsed_seconds: float
    picture: str | None = None
    notes: tuple[str, ...] = ()
    transport: str = "sqs"

    @property
    def slo_met(self) -> bool:
        return all(s.slo_met is not False for s in self.streams)

    @property
    def clean(self) -> bool:
        """Nothing lost: no dead letters, no driver errors, every measured event seen."""
        return (
            not any(self.dlq.values())
            and not any(s.errors for s in self.streams)
            and not any(s.not_visible for s in self.streams)
        )

    def to_dict(self, *, samples: bool = False) -> dict[str, Any]:
        backlog = BACKLOG_KEYS.get(self.transport, "backlog")
        return {
            "transport": self.transport,
            "scenario": self.scenario,
            "streams": {s.name: s.to_dict(samples=samples) for s in self.streams},
            f"{backlog}_at_end": self.backlog_at_end,
            f"{backlog}_max": self.backlog_max,
            "dlq": self.dlq,
            "worker_error_lines": self.worker_errors,
            "machine": self.machine,
            "elapsed_seconds": round(self.elapsed_seconds, 2),
            "picture": self.picture,
            "slo_met": self.slo_met,
            "latency_unit": "ms",
        }


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.0f} ms"


def _verdict(stream: StreamResult) -> str:
    if stream.slo_met is None:
        return "no SLO"
    goal = f"P95 ≤ {_ms(stream.slo_p95)}"
    return f"[green]met[/] ({goal})" if stream.slo_met else f"[red]MISSED[/] ({goal})"


def report_table(report: LoadReport, title: str = "Load test") -> Table:
    """One column per stream; the rows are the figures a reader compares."""
    table = Table(title=title, title_justify="left")
    table.add_column("figure", style="bold")
    for stream in report.streams:
        table.add_column(f"{stream.name} → {stream.visible_as}", justify="right")
    rows: list[tuple[str, list[str]]] = [
        ("offered / sent", [f"{s.offered} / {s.sent}" for s in report.streams]),
        ("measured (after warm-up)", [str(s.measured) for s in report.streams]),
        ("achieved", [f"{s.achieved_per_second:.1f}/s" for s in report.streams]),
        ("P50", [_ms(s.latency.p50) for s in report.streams]),
        ("P95", [_ms(s.latency.p95) for s in report.streams]),
        ("P99", [_ms(s.latency.p99) for s in report.streams]),
        ("max", [_ms(s.latency.max) for s in report.streams]),
        ("never visible", [str(s.not_visible) for s in report.streams]),
        ("trimmed before seen", [str(s.trimmed_before_seen) for s in report.streams]),
        ("driver errors", [str(s.errors) for s in report.streams]),
        ("SLO", [_verdict(s) for s in report.streams]),
    ]
    for name, cells in rows:
        table.add_row(name, *cells)
    return table


def summary_lines(report: LoadReport) -> list[str]:
    """The figures that are not per stream, one line each."""

    def fmt(d: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in d.items()) or "none"

    errors = {k: v for k, v in report.worker_errors.items() if v}
    backlog = backlog_label(report.transport)
    lines = [
        f"{backlog} at end of load: {fmt(report.backlog_at_end)}",
        f"{backlog} max seen: {fmt(report.backlog_max)}",
        f"dead-lettered: {fmt(report.dlq)}",
        f"worker error log lines: {fmt(errors)}",
        f"machine: {report.machine.get('cores')} cores, load average "
        f"{report.machine.get('load_at_start_of_load')} when the load started, "
        f"{report.machine.get('load_after')} at the end",
    ]
    trimmed = sum(s.trimmed_before_seen for s in report.streams)
    if trimmed:
        lines.append(
            f"trimmed before seen: {trimmed} post(s) reached their feeds but were pushed out by "
            "FEED_MAX_LENGTH newer posts before a probe looked (latency unknown, not lost)"
        )
    return lines


def can_draw() -> bool:
    """Whether matplotlib (the `loadtest` extra, not the runtime) is installed."""
    return importlib.util.find_spec("matplotlib") is not None


def draw(report: LoadReport, path: Path) -> Path:
    """Latency over time and a histogram per stream, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    streams = [s for s in report.streams if s.samples]
    rows = max(1, len(streams))
    fig, axes = plt.subplots(rows, 2, figsize=(12, 3.6 * rows), squeeze=False)
    for row, stream in zip(axes, streams, strict=False):
        _draw_stream(row[0], row[1], stream)
    fig.suptitle(_title(report), fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _draw_stream(over_time: Any, histogram: Any, stream: StreamResult) -> None:
    xs = [at for at, _ in stream.samples]
    ys = [lat * 1000 for _, lat in stream.samples]
    over_time.scatter(xs, ys, s=3, alpha=0.5)
    over_time.set_xlabel("occurredAt (s after warm-up)")
    over_time.set_ylabel("latency (ms)")
    over_time.set_title(f"{stream.name} → {stream.visible_as}: latency over time")
    histogram.hist(ys, bins=60, range=(0, max(ys) if ys else 1.0))
    histogram.set_xlabel("latency (ms)")
    histogram.set_ylabel("events")
    histogram.set_title(f"{stream.name}: distribution")
    top = max(ys) if ys else 1.0
    slo = stream.slo_p95 * 1000 if stream.slo_p95 is not None else None
    # An SLO far above every sample would squash the data into one line: name it instead.
    shown_slo = slo if slo is not None and slo <= 2 * top else None
    limit = 1.1 * max(top, shown_slo or 0.0)
    over_time.set_ylim(0, limit)
    histogram.set_xlim(0, limit)
    lines = [("P95", stream.latency.p95 and stream.latency.p95 * 1000, "--", "black")]
    lines.append(("SLO", shown_slo, ":", "red"))
    for ax, draw_line in ((over_time, over_time.axhline), (histogram, histogram.axvline)):
        for label, value, style, colour in lines:
            if value:
                draw_line(value, linestyle=style, color=colour, label=f"{label} {value:.0f} ms")
        if slo is not None and shown_slo is None:
            ax.plot([], [], " ", label=f"SLO {slo:.0f} ms (off scale)")
        ax.legend(loc="upper right", fontsize=8)


def _title(report: LoadReport) -> str:
    sc = report.scenario
    return (
        f"over {report.transport}: "
        f"{sc.get('users')} users, {sc.get('posts_per_minute')} posts/min, "
        f"{sc.get('profile_updates_per_second')} profile updates/s, {sc.get('duration')} s; "
        f"workers per pipeline: {sc.get('workers')}; "
        f"{report.machine.get('cores')} cores, load {report.machine.get('load_at_start_of_load')}"
    )
