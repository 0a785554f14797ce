"""Deployment files: they parse, name real settings, probe real endpoints, drain in time.

None of this is applied to a cluster here; these checks catch what a reader
would otherwise catch only on a live deploy: a misspelt variable, a probe on a
path no process serves, a grace period shorter than the drain deadline, a
worker without an autoscaler, a pod a `restricted` namespace would refuse, a
manifest `kubectl apply -k` would reject (built with kubectl's kustomize and
validated against the Kubernetes OpenAPI schemas and KEDA's CRDs).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import typer.main
import yaml  # type: ignore[import-untyped]

from cli.main import app
from config.settings import Settings

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
K8S = DEPLOY / "k8s"
SETTINGS_VARS = {name.upper() for name in Settings.model_fields}
KNOWN_KINDS = {
    "Namespace", "ConfigMap", "Secret", "ServiceAccount", "Deployment", "Service", "Job",
    "CronJob", "ScaledObject", "TriggerAuthentication", "Kustomization",
    "PodDisruptionBudget", "NetworkPolicy",
}  # fmt: skip
PIPELINE_QUEUES = {
    "feed": Settings().feed_queue,
    "search": Settings().search_queue,
    "notifications": Settings().notifications_queue,
}


def k8s_documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                yield path, doc


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in k8s_documents() if doc["kind"] == kind]


def pod_template(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template: dict[str, Any] = spec["template"]
    return template


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    pod = pod_template(workload)["spec"]
    found: list[dict[str, Any]] = pod.get("initContainers", []) + pod["containers"]
    return found


def workloads() -> list[dict[str, Any]]:
    return [d for _, d in k8s_documents() if d["kind"] in ("Deployment", "Job", "CronJob")]


def config_map_data() -> dict[str, str]:
    (config,) = [c for c in of_kind("ConfigMap") if c["metadata"]["name"] == "socialpipe-config"]
    data: dict[str, str] = config["data"]
    return data


def test_every_deploy_file_parses() -> None:
    # GIVEN every YAML and JSON file under deploy/
    files = [p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml", ".json")]
    assert len(files) >= 10
    # THEN each parses
    for path in files:
        if path.suffix == ".json":
            assert json.loads(path.read_text()), path
        else:
            assert list(yaml.safe_load_all(path.read_text())), path


def test_every_manifest_has_a_known_kind_and_a_name() -> None:
    for path, doc in k8s_documents():
        assert doc["kind"] in KNOWN_KINDS, path
        assert doc.get("apiVersion"), path
        if doc["kind"] != "Kustomization":
            assert doc["metadata"]["name"], path


def test_kustomization_lists_every_manifest_that_exists() -> None:
    (kustomization,) = of_kind("Kustomization")
    listed = set(kustomization["resources"])
    assert all((K8S / name).is_file() for name in listed), listed
    own = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    missing = {n for n in own - listed if not n.startswith("cronjob-")}
    assert not missing, f"not in kustomization.yaml: {missing}"


def test_every_environment_name_is_a_setting() -> None:
    # GIVEN the ConfigMap, the example Secret and any literal env entries
    names = set(config_map_data())
    for secret in of_kind("Secret"):
        names |= set(secret.get("stringData", {})) | set(secret.get("data", {}))
    for workload in workloads():
        for container in containers(workload):
            names |= {e["name"] for e in container.get("env", [])}
    # THEN each is read by config.settings.Settings
    assert names, "no environment found"
    assert names <= SETTINGS_VARS, names - SETTINGS_VARS


def test_env_comes_from_the_shared_config_and_secret() -> None:
    for workload in workloads():
        for container in containers(workload):
            refs = container.get("envFrom", [])
            sources = {r.get("configMapRef", r.get("secretRef", {})).get("name") for r in refs}
            assert {"socialpipe-config", "socialpipe-secrets"} <= sources, workload["metadata"]


def test_containers_run_real_commands_with_resources() -> None:
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    for workload in workloads():
        for container in containers(workload):
            assert container["args"][0] in commands, container["args"]
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), workload["metadata"]
            assert {"cpu", "memory"} <= set(resources["limits"]), workload["metadata"]


def deployments() -> list[dict[str, Any]]:
    return of_kind("Deployment")


@pytest.mark.parametrize("name", ["api", "relay", "worker-feed", "worker-search",
                                  "worker-notifications"])  # fmt: skip
def test_long_running_processes_probe_healthz_and_readyz(name: str) -> None:
    (deployment,) = [d for d in deployments() if d["metadata"]["name"] == name]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["port"] in ports
    assert container["readinessProbe"]["httpGet"]["port"] in ports


def test_prometheus_scrapes_each_deployment_on_its_metrics_port() -> None:
    # GIVEN the metrics port every process serves /metrics on (METRICS_PORT)
    metrics_port = int(config_map_data()["METRICS_PORT"])
    for deployment in deployments():
        template = deployment["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        # THEN the scrape annotation names that port, and the container declares it
        assert annotations["prometheus.io/port"] == str(metrics_port), deployment["metadata"]
        ports = {p["containerPort"] for c in template["spec"]["containers"] for p in c["ports"]}
        assert metrics_port in ports, deployment["metadata"]["name"]


def test_termination_grace_outlasts_the_drain_deadline() -> None:
    # GIVEN the drain deadline the pods are configured with
    drain = float(
        config_map_data().get("SHUTDOWN_GRACE_SECONDS", Settings().shutdown_grace_seconds)
    )
    # THEN every worker and the relay get longer before SIGKILL
    for deployment in deployments():
        if deployment["metadata"]["name"] == "api":
            continue
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > drain, deployment["metadata"]["name"]


@pytest.mark.parametrize("pipeline", sorted(PIPELINE_QUEUES))
def test_each_worker_scales_on_its_own_queue_depth(pipeline: str) -> None:
    # GIVEN the worker's Deployment and the ScaledObjects
    name = f"worker-{pipeline}"
    (deployment,) = [d for d in deployments() if d["metadata"]["name"] == name]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == ["worker", pipeline]
    (scaled,) = [s for s in of_kind("ScaledObject") if s["spec"]["scaleTargetRef"]["name"] == name]
    # THEN it scales between sensible bounds on its SQS queue (not the DLQ)
    spec = scaled["spec"]
    assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"] <= 50
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "aws-sqs-queue"
    assert re.search(rf"/{re.escape(PIPELINE_QUEUES[pipeline])}$", trigger["metadata"]["queueURL"])
    assert int(trigger["metadata"]["queueLength"]) > 0
    auth = {t["metadata"]["name"] for t in of_kind("TriggerAuthentication")}
    assert trigger["authenticationRef"]["name"] in auth


def test_api_service_selects_the_api_pods() -> None:
    (service,) = [s for s in of_kind("Service") if s["metadata"]["name"] == "api"]
    (api,) = [d for d in deployments() if d["metadata"]["name"] == "api"]
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return data


def test_compose_runs_the_full_stack() -> None:
    services = set(compose()["services"])
    infrastructure = {"postgres", "redis", "opensearch", "fauxqs", "prometheus", "grafana"}
    ours = {"migrate", "queues", "api", "relay", "feed-worker", "search-worker"}
    assert infrastructure | ours | {"notifications-worker"} <= services


def test_compose_environment_names_are_settings() -> None:
    for name, service in compose()["services"].items():
        if str(service.get("image", "")).startswith("socialpipe"):
            env = set(service.get("environment", {}))
            assert env <= SETTINGS_VARS, (name, env - SETTINGS_VARS)


def test_prometheus_scrapes_the_compose_services() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    text = json.dumps(config)
    for service in ("feed-worker", "search-worker", "notifications-worker", "relay", "api"):
        assert service in text
        assert service in compose()["services"]


def test_dashboard_queries_only_metrics_that_exist() -> None:
    # GIVEN the metric names defined in contracts/metrics.py
    source = (Path(__file__).resolve().parents[3] / "contracts" / "metrics.py").read_text()
    defined = set(re.findall(r'"(socialpipe_[a-z_]+)"', source))
    # WHEN every panel's queries are read
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "socialpipe.json").read_text())
    used = {
        re.sub(r"_(bucket|count|sum)$", "", m)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for m in re.findall(r"socialpipe_[a-z_]+", target["expr"])
    }
    # THEN each is defined, and the key ones are on the dashboard
    assert used <= defined, used - defined
    assert {"socialpipe_end_to_end_latency_seconds", "socialpipe_dlq_depth"} <= used


def test_kustomization_lists_each_resource_once() -> None:
    # GIVEN the kustomization WHEN its resources are read as a list THEN none repeats
    # (kustomize refuses a resource registered twice: `kubectl apply -k` would fail)
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources)), sorted(resources)


def test_every_pod_meets_the_restricted_pod_security_standard() -> None:
    # GIVEN every pod template (Deployments, the set-up Job, the CronJobs)
    assert len(workloads()) >= 9
    for workload in workloads():
        name = workload["metadata"]["name"]
        pod = pod_template(workload)["spec"]
        # THEN the pod runs as a non-root user under the runtime's seccomp profile
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 10000, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        # AND no pod mounts a Kubernetes API token it never uses
        assert pod["automountServiceAccountToken"] is False, name
        # AND each container drops every capability and cannot escalate
        for container in containers(workload):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert "add" not in context["capabilities"], name
            assert context["readOnlyRootFilesystem"] is True, name


def test_the_namespace_enforces_the_restricted_standard() -> None:
    (namespace,) = of_kind("Namespace")
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_service_accounts_mount_no_token_and_only_setup_may_create() -> None:
    accounts = {a["metadata"]["name"]: a for a in of_kind("ServiceAccount")}
    assert all(a["automountServiceAccountToken"] is False for a in accounts.values())
    used = {
        pod_template(w)["spec"]["serviceAccountName"]: w["metadata"]["name"] for w in workloads()
    }
    assert set(used) <= set(accounts), set(used) - set(accounts)
    (setup,) = of_kind("Job")
    assert pod_template(setup)["spec"]["serviceAccountName"] == "socialpipe-setup"
    others = [w for w in workloads() if w["kind"] != "Job"]
    assert all(pod_template(w)["spec"]["serviceAccountName"] != "socialpipe-setup" for w in others)


def scaled_targets() -> set[str]:
    return {s["spec"]["scaleTargetRef"]["name"] for s in of_kind("ScaledObject")}


def test_keda_scaled_deployments_leave_replicas_to_keda() -> None:
    # GIVEN the Deployments KEDA scales THEN none sets replicas (an apply would reset them)
    assert scaled_targets() == {"worker-feed", "worker-search", "worker-notifications"}
    for deployment in deployments():
        if deployment["metadata"]["name"] in scaled_targets():
            assert "replicas" not in deployment["spec"], deployment["metadata"]["name"]


def test_every_deployment_has_a_disruption_budget_and_spreads_over_nodes() -> None:
    budgets = of_kind("PodDisruptionBudget")
    for deployment in deployments():
        name = deployment["metadata"]["name"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        # THEN one budget selects its pods, and lets a drain go on (never zero allowed)
        (budget,) = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        if "minAvailable" in budget["spec"]:
            assert budget["spec"]["minAvailable"] < deployment["spec"]["replicas"], name
        else:
            assert budget["spec"]["maxUnavailable"] >= 1, name
        # AND its replicas prefer different nodes
        anti = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        (term,) = anti["preferredDuringSchedulingIgnoredDuringExecution"]
        assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        assert term["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= labels.items()


def test_network_policies_deny_by_default_and_allow_dns() -> None:
    policies = {p["metadata"]["name"]: p["spec"] for p in of_kind("NetworkPolicy")}
    deny = policies["default-deny"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    dns = policies["allow-dns"]["egress"][0]["ports"]
    assert {(p["protocol"], p["port"]) for p in dns} == {("UDP", 53), ("TCP", 53)}
    # AND the API's port and the workers' metrics port are open to someone
    assert policies["api-ingress"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8000}]
    assert policies["metrics-scrape"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 9100}]


VARIANTS = {"sqs": DEPLOY / "k8s", "kafka": DEPLOY / "k8s-kafka"}
# The Kubernetes release the manifests are validated against.
KUBERNETES_VERSION = "1.32.0"
CRDS = Path(__file__).parent / "crds"


def kustomize(path: Path) -> list[dict[str, Any]]:
    """What `kubectl apply -k PATH` would send, built by kubectl's own kustomize."""
    built = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert built.returncode == 0, built.stderr
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → the openAPIV3Schema of each vendored KEDA CRD version."""
    found = {}
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
            found[key] = version["schema"]["openAPIV3Schema"]
    return found


def unknown_fields(value: Any, schema: dict[str, Any], at: str = "") -> list[str]:
    """Fields the schema does not declare: `kubectl apply` (strict field validation) refuses
    them, where plain JSON Schema would let them through."""
    if isinstance(value, list) and "items" in schema:
        return [
            f for i, v in enumerate(value) for f in unknown_fields(v, schema["items"], f"{at}[{i}]")
        ]
    if not isinstance(value, dict) or "properties" not in schema:
        return []
    if schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("additionalProperties"):
        return []
    found = [f"{at}.{key}" for key in value if key not in schema["properties"]]
    for key, child in value.items():
        if key in schema["properties"]:
            found += unknown_fields(child, schema["properties"][key], f"{at}.{key}")
    return found


def validate(doc: dict[str, Any], schemas: dict[tuple[str, str], dict[str, Any]]) -> None:
    custom = schemas.get((doc["apiVersion"], doc["kind"]))
    if custom is None:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        return
    jsonschema.validate(doc, custom)
    assert not unknown_fields(doc, custom), unknown_fields(doc, custom)


needs_kubectl = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl is not installed"
)


@needs_kubectl
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_kubectl_kustomize_builds_manifests_the_schemas_accept(variant: str) -> None:
    # GIVEN kubectl WHEN it builds the variant as `kubectl apply -k` would
    docs = kustomize(VARIANTS[variant])
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Job", "CronJob", "ScaledObject", "NetworkPolicy"} <= kinds
    # THEN every object is valid against the Kubernetes or the KEDA schema of its kind
    schemas = crd_schemas()
    for doc in docs:
        validate(doc, schemas)
    # AND each variant scales the workers on its own signal
    triggers = {
        t["type"] for d in docs if d["kind"] == "ScaledObject" for t in d["spec"]["triggers"]
    }
    assert triggers == ({"kafka"} if variant == "kafka" else {"aws-sqs-queue"})
    (config,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert config["data"]["EVENT_TRANSPORT"] == variant


def test_the_validators_refuse_a_broken_manifest() -> None:
    # GIVEN a Deployment with a misspelt field and a ScaledObject with one
    (deployment,) = [d for d in deployments() if d["metadata"]["name"] == "api"]
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    (scaled, *_) = of_kind("ScaledObject")
    typo = {**scaled, "spec": {**scaled["spec"], "minReplicas": 1}}
    # THEN both are refused
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken, crd_schemas())
    with pytest.raises(AssertionError, match="minReplicas"):
        validate(typo, crd_schemas())


@needs_kubectl
def test_the_setup_job_is_named_after_its_release() -> None:
    # GIVEN the built manifests WHEN the set-up Job is read
    docs = kustomize(VARIANTS["sqs"])
    (job,) = [d for d in docs if d["kind"] == "Job"]
    version = job["metadata"]["labels"]["app.kubernetes.io/version"]
    # THEN its name carries the release, so a new release applies a new Job
    assert job["metadata"]["name"] == f"socialpipe-setup-{version}"
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    images = {c["image"] for c in containers(job)}
    assert images == {f"socialpipe:{version}"}
