"""deploy/alerts.yml: a valid Prometheus rule file naming only metrics that exist, each
alert with a runbook section; where alerts and logs go (Alertmanager, Loki, Alloy).

promtool and amtool check the files too when they are on the PATH.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from config.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "alerts.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
# Not ours, each explained in the rule file: the client library's process
# collector, cAdvisor's container limit and CloudWatch's queue age (through YACE).
EXTERNAL = {
    "process_resident_memory_bytes",
    "container_spec_memory_limit_bytes",
    "aws_sqs_approximate_age_of_oldest_message_maximum",
}
PROMQL_WORDS = {
    "max", "sum", "by", "on", "rate", "histogram_quantile", "le", "queue", "namespace", "pod",
    "pipeline", "container", "feed", "search", "socialpipe", "POD", "label_replace",
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
        assert rule["annotations"]["runbook_url"], rule["alert"]
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


def anchors(markdown: str) -> set[str]:
    """The fragment ids a Markdown renderer gives the headings (lower case, spaces to
    hyphens, punctuation dropped)."""
    headings = re.findall(r"^#{1,6} (.+)$", markdown, re.MULTILINE)
    return {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_runbook_url_points_at_a_section_of_the_runbook() -> None:
    # GIVEN the runbook's headings
    sections = anchors(RUNBOOK.read_text())
    for rule in rules():
        # WHEN an alert's runbook_url is read THEN it names a section that exists
        path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert path == "docs/runbook.md", rule["alert"]
        assert anchor == rule["alert"].lower() and anchor in sections, rule["alert"]


def test_queues_alert_on_their_oldest_message_and_kafka_on_lag() -> None:
    by_name = {r["alert"]: r for r in rules()}
    oldest = by_name["SocialpipeQueueOldestMessageTooOld"]["expr"]
    assert "aws_sqs_approximate_age_of_oldest_message_maximum" in oldest
    assert "max by (queue)" in oldest
    defaults = Settings.model_fields
    for field in ("feed_queue", "search_queue", "notifications_queue"):
        assert defaults[field].default in oldest, field
    lag = by_name["SocialpipeKafkaConsumerLagHigh"]["expr"]
    assert "socialpipe_consumer_lag" in lag and "sum by (group, topic)" in lag


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def test_dead_letters_page_through_pagerduty_with_the_key_from_a_secret() -> None:
    # GIVEN the Alertmanager configuration
    config = load(DEPLOY / "monitoring" / "alertmanager.yml")
    receivers = {r["name"]: r for r in config["receivers"]}
    # WHEN the DLQ alert is routed
    (route,) = [
        r for r in config["route"]["routes"]
        if 'alertname = "SocialpipeDeadLettersWaiting"' in r["matchers"]
    ]  # fmt: skip
    # THEN it reaches a PagerDuty receiver whose key is read from a file, not written here
    (pagerduty,) = receivers[route["receiver"]]["pagerduty_configs"]
    assert pagerduty["routing_key_file"].startswith("/etc/alertmanager/secrets/")
    assert "routing_key" not in pagerduty and "service_key" not in pagerduty
    assert "runbook_url" in pagerduty["links"][0]["href"]
    # AND every other alert has a default receiver
    assert config["route"]["receiver"] in receivers


def test_compose_prometheus_loads_the_rules_and_sends_to_alertmanager() -> None:
    prometheus = load(DEPLOY / "prometheus.yml")
    assert prometheus["rule_files"] == ["alerts.yml"]
    targets = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    services = load(DEPLOY / "docker-compose.yml")["services"]
    assert "./alerts.yml:/etc/prometheus/alerts.yml:ro" in services["prometheus"]["volumes"]
    assert targets == ["alertmanager:9093"] and "alertmanager" in services
    mounts = " ".join(services["alertmanager"]["volumes"])
    assert "monitoring/alertmanager.yml" in mounts and "pagerduty-routing-key" in mounts


def test_loki_keeps_error_logs_thirty_days_and_alloy_labels_the_level() -> None:
    loki = load(DEPLOY / "logging" / "loki.yaml")
    assert loki["compactor"]["retention_enabled"] is True
    (errors,) = loki["limits_config"]["retention_stream"]
    assert "error" in errors["selector"] and errors["period"] == "720h"
    assert loki["limits_config"]["retention_period"] == "168h"
    alloy = (DEPLOY / "logging" / "alloy.alloy").read_text()
    assert 'level     = "level"' in alloy and "loki.write" in alloy


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_rules_and_the_compose_configuration() -> None:
    for args in (
        ["check", "rules", str(RULES)],
        ["check", "config", str(DEPLOY / "prometheus.yml")],
    ):
        done = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool is not installed")
def test_amtool_accepts_the_alertmanager_configuration() -> None:
    path = DEPLOY / "monitoring" / "alertmanager.yml"
    done = subprocess.run(["amtool", "check-config", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
