"""The report every reconciler prints and writes (table and JSON).

One dataclass for the three reconcilers so that the CLI, the nightly jobs and
the benchmark read one shape; each kind shows only the counts that mean
something for it (`rows`), while the JSON always carries every count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

_COUNTS: Final = (
    "checked",
    "missing",
    "stale",
    "privacy",
    "orphaned",
    "extra",
    "duplicate",
    "phantom",
    "counters",
    "repaired",
    "failed",
    "invalid",
)

# The drift counts each kind reports, in table order, with their table labels.
_DRIFT_ROWS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "search": (
        ("missing", "missing"),
        ("stale", "stale"),
        ("privacy", "privacy"),
        ("orphaned", "orphaned"),
    ),
    "feeds": (
        ("missing", "missing"),
        ("extra", "extra"),
        ("duplicate", "duplicate"),
        ("phantom", "phantom"),
    ),
    "notifications": (
        ("missing", "missing rows"),
        ("counters", "counters fixed"),
    ),
}


@dataclass(slots=True)
class ReconcileReport:
    """Counts of one reconciliation run.

    search: `missing`/`stale`/`privacy` are documents (stale = content differs),
    `orphaned` documents of users that no longer exist. feeds: `missing`
    expected posts absent from a feed, `extra` entries of existing posts the
    rule does not expect, `duplicate` repeated entries, `phantom` entries whose
    post does not exist. notifications: `missing` rows the source tables call
    for, `counters` unread counters that disagree with the rows.
    `repaired` counts what was written or deleted; `failed` what could not be.
    """

    kind: str
    dry_run: bool = False
    checked: int = 0
    missing: int = 0
    stale: int = 0
    privacy: int = 0
    orphaned: int = 0
    extra: int = 0
    duplicate: int = 0
    phantom: int = 0
    counters: int = 0
    repaired: int = 0
    failed: int = 0
    invalid: int = 0
    duration: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def drift(self) -> int:
        return (
            self.missing
            + self.stale
            + self.privacy
            + self.orphaned
            + self.extra
            + self.duplicate
            + self.phantom
            + self.counters
        )

    @property
    def users_per_second(self) -> float:
        return self.checked / self.duration if self.duration > 0 else 0.0

    @property
    def consistent(self) -> bool:
        """True when the read model matches the source at the end of the run."""
        if self.dry_run:
            return self.drift == 0
        return self.failed == 0 and self.repaired >= self.drift

    def add(self, other: ReconcileReport) -> None:
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failures.extend(other.failures[: max(0, 20 - len(self.failures))])

    def as_json(self) -> dict[str, Any]:
        counts = {name: getattr(self, name) for name in _COUNTS}
        return {
            "kind": self.kind,
            "dryRun": self.dry_run,
            **counts,
            "drift": self.drift,
            "durationSeconds": round(self.duration, 3),
            "usersPerSecond": round(self.users_per_second, 1),
            "consistent": self.consistent,
            "failures": self.failures,
        }

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) rows for a table."""
        rows = [("checked", f"{self.checked:,}")]
        rows += [
            (label, f"{getattr(self, name):,}") for name, label in _DRIFT_ROWS.get(self.kind, ())
        ]
        rows += [
            ("repaired", f"{self.repaired:,}" + (" (dry run)" if self.dry_run else "")),
            ("failed", f"{self.failed:,}"),
            ("duration", f"{self.duration:.2f} s"),
            ("users/s", f"{self.users_per_second:,.0f}"),
        ]
        return rows
