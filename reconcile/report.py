"""The report both reconcilers print and write (table and JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class ReconcileReport:
    """Counts of one reconciliation run.

    search: `missing`/`stale`/`privacy` are documents, `orphaned` documents of
    users that no longer exist. feeds: `missing` are feed entries to add,
    `orphaned` entries of deleted posts or removed connections, `stale` feeds
    whose entries were right but out of order or over-long; `privacy` stays 0.
    `repaired` counts what was written or deleted; `failed` what could not be.
    """

    kind: str
    dry_run: bool = False
    checked: int = 0
    missing: int = 0
    stale: int = 0
    privacy: int = 0
    orphaned: int = 0
    repaired: int = 0
    failed: int = 0
    invalid: int = 0
    duration: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def drift(self) -> int:
        return self.missing + self.stale + self.privacy + self.orphaned

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
        for name in ("checked", "missing", "stale", "privacy", "orphaned", "repaired", "failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.invalid += other.invalid
        self.failures.extend(other.failures[: max(0, 20 - len(self.failures))])

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "dryRun": self.dry_run,
            "checked": self.checked,
            "missing": self.missing,
            "stale": self.stale,
            "privacy": self.privacy,
            "orphaned": self.orphaned,
            "repaired": self.repaired,
            "failed": self.failed,
            "invalid": self.invalid,
            "durationSeconds": round(self.duration, 3),
            "usersPerSecond": round(self.users_per_second, 1),
            "consistent": self.consistent,
            "failures": self.failures,
        }

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) rows for a table."""
        rows = [
            ("checked", f"{self.checked:,}"),
            ("missing", f"{self.missing:,}"),
            ("stale", f"{self.stale:,}"),
        ]
        if self.kind == "search":
            rows.append(("privacy", f"{self.privacy:,}"))
        rows += [
            ("orphaned", f"{self.orphaned:,}"),
            ("repaired", f"{self.repaired:,}" + (" (dry run)" if self.dry_run else "")),
            ("failed", f"{self.failed:,}"),
            ("duration", f"{self.duration:.2f} s"),
            ("users/s", f"{self.users_per_second:,.0f}"),
        ]
        return rows
