"""deploy/alerts.yml: a valid Prometheus rule file naming only metrics that exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "deploy" / "alerts.yml"
# Not ours, each explained in the rule file: the client library's process
# collector and cAdvisor's container limit.
EXTERNAL = {"process_resident_memory_bytes", "container_spec_memory_limit_bytes"}
PROMQL_WORDS = {
    "max", "sum", "by", "on", "rate", "histogram_quantile", "le", "queue", "namespace", "pod",
    "pipeline", "container", "feed", "search", "socialpipe", "POD",
}  # fmt: skip


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def defined_metrics() -> set[str]:
    source = (ROOT / "contracts" / "metrics.py").read_text()
    return set(re.findall(r'"(socialpipe_[a-z_]+)"', source))


def test_every_rule_is_a_well_formed_alert() -> None:
    data = yaml.safe_load(RULES.read_text())
    assert data["groups"] and all(g["name"] and g["rules"] for g in data["groups"])
    names = [r["alert"] for r in rules()]
    assert len(names) == len(set(names))
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert rule["annotations"]["summary"]
        assert rule["expr"].count("(") == rule["expr"].count(")")


def test_rules_name_only_metrics_that_exist() -> None:
    used = set()
    for rule in rules():
        expr = re.sub(r'\{[^}]*\}|"[^"]*"|\[[^\]]*\]', "", rule["expr"])
        used |= {w for w in re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*", expr) if "_" in w}
    used = {re.sub(r"_bucket$", "", m) for m in used} - PROMQL_WORDS - {"histogram_quantile"}
    assert used <= defined_metrics() | EXTERNAL, used - defined_metrics() - EXTERNAL


def test_the_alerts_the_operators_asked_for_are_there() -> None:
    by_name = {r["alert"]: r for r in rules()}
    dlq = by_name["SocialpipeDeadLettersWaiting"]
    assert "socialpipe_dlq_depth" in dlq["expr"] and dlq["expr"].rstrip().endswith("> 0")
    assert dlq["labels"]["severity"] == "critical"
    assert "0.8" in by_name["SocialpipeMemoryNearLimit"]["expr"]
    feed, search = (
        by_name["SocialpipeFeedLatencyAboveSlo"],
        by_name["SocialpipeSearchLatencyAboveSlo"],
    )
    for rule, slo in ((feed, "2"), (search, "5")):
        assert "histogram_quantile(0.95" in rule["expr"]
        assert "socialpipe_end_to_end_latency_seconds_bucket" in rule["expr"]
        assert rule["expr"].rstrip().endswith(f"> {slo}")
    assert "socialpipe_outbox_parked_events" in by_name["SocialpipeOutboxEventsParked"]["expr"]
