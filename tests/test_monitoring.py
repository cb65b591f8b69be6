"""The monitoring recipes in ``deploy/kubernetes/``: the Service, the ``monitoring`` component
(ServiceMonitor, PrometheusRule, Grafana dashboard) and the ``token-refresh`` component.

The metric names the alerts and the dashboard query are checked here against what
:class:`~watcher.faces.run.metrics.Metrics` registers, and in ``tests/test_run_e2e.py`` against
what a running ``watcher run`` really serves on ``/metrics``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.test_deploy import K8S, documents, listen_port, needs_yaml, one, tool, yaml
from watcher.faces.run.metrics import Metrics

MONITORING = K8S / "monitoring"
TOKEN_REFRESH = K8S / "token-refresh"
DASHBOARD = MONITORING / "keb-watcher-dashboard.json"
#: Series Prometheus makes itself for every target, not read from /metrics.
SYNTHETIC = {"up"}
IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')


def metric_names(expr: str) -> set[str]:
    """The ``keb_watcher_*`` and ``process_*`` series a PromQL expression reads.

    >>> sorted(metric_names('sum by (s) (rate(keb_watcher_x_total{s!="process_y"}[5m]))'))
    ['keb_watcher_x_total']
    """
    code = STRING.sub('""', expr)
    return {
        name for name in IDENTIFIER.findall(code) if name.startswith(("keb_watcher_", "process_"))
    }


def rules() -> list[dict[str, Any]]:
    (rule,) = documents(MONITORING / "prometheusrule.yaml")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_exprs() -> list[str]:
    exprs = [t["expr"] for panel in dashboard()["panels"] for t in panel.get("targets", [])]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def monitoring_metric_names() -> set[str]:
    """Every ``keb_watcher_*``/``process_*`` series the alerts and the dashboard query."""
    names: set[str] = set()
    for expr in [r["expr"] for r in rules()] + dashboard_exprs():
        names |= metric_names(expr)
    return names


def exposed_names() -> set[str]:
    """Series names of a fresh registry, plus those that appear with their first label value
    (a KEB request, a failure reason)."""
    metrics = Metrics()
    metrics.keb_request("2xx", 0.1)
    metrics.failure_reasons([("quota exceeded", 1)])
    text = metrics.exposition().decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


# -- metric names ---------------------------------------------------------------------------


@needs_yaml
def test_every_queried_metric_is_one_the_service_registers() -> None:
    used = monitoring_metric_names()
    assert {"keb_watcher_orchestrations", "process_start_time_seconds"} <= used
    assert used - exposed_names() == set()


@needs_yaml
def test_every_expression_reads_a_metric() -> None:
    for expr in [r["expr"] for r in rules()] + dashboard_exprs():
        names = metric_names(expr) | (set(IDENTIFIER.findall(expr)) & SYNTHETIC)
        assert names, f"reads no metric: {expr}"
        assert expr.count("(") == expr.count(")"), expr
        assert expr.count("{") == expr.count("}"), expr


# -- Service and ServiceMonitor -------------------------------------------------------------


@needs_yaml
def test_service_selects_the_deployment_pod_and_its_listen_port() -> None:
    service = one("Service")
    assert service["apiVersion"] == "v1"
    pod = one("Deployment")["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    (main,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert ports[port["targetPort"]] == listen_port() == port["port"]
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"


@needs_yaml
def test_servicemonitor_scrapes_the_service_metrics_port() -> None:
    (monitor,) = documents(MONITORING / "servicemonitor.yaml")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["kind"] == "ServiceMonitor"
    service = one("Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme", "authorization"}
    # /metrics asks for service.metrics_token: the same key of the same Secret as the pod's.
    assert endpoint["authorization"]["type"] == "Bearer"
    credentials = endpoint["authorization"]["credentials"]
    assert (credentials["name"], credentials["key"]) == ("keb-watcher-tokens", "metrics-token")


# -- PrometheusRule -------------------------------------------------------------------------

DURATION = re.compile(r"\d+[smhd]")


@needs_yaml
def test_prometheusrule_has_the_alerts_people_need() -> None:
    (rule,) = documents(MONITORING / "prometheusrule.yaml")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    assert rule["metadata"]["labels"]["app.kubernetes.io/name"] == "keb-watcher"
    alerts = {r["alert"]: r for r in rules()}
    assert set(alerts) == {
        "KebWatcherDown",
        "KebWatcherKebUnreachable",
        "KebWatcherOutboxStuck",
        "KebWatcherNotificationsDead",
        "KebOrchestrationFailed",
    }
    for name, alert in alerts.items():
        assert set(alert) <= {"alert", "expr", "for", "labels", "annotations"}, name
        assert alert["labels"]["severity"] in ("warning", "critical"), name
        assert alert["annotations"]["summary"], name
        assert DURATION.fullmatch(alert.get("for", "0s")), name
    service = one("Service")["metadata"]["name"]
    assert f'up{{job="{service}"}}' in alerts["KebWatcherDown"]["expr"]
    assert "absent(" in alerts["KebWatcherDown"]["expr"]
    unreachable = metric_names(alerts["KebWatcherKebUnreachable"]["expr"])
    assert {
        "keb_watcher_last_successful_poll_timestamp_seconds",
        "keb_watcher_alert_after_seconds",  # follows [poll] alert_after
    } <= unreachable
    assert (
        "keb_watcher_outbox_oldest_pending_age_seconds" in alerts["KebWatcherOutboxStuck"]["expr"]
    )
    assert 'status="dead"' in alerts["KebWatcherNotificationsDead"]["expr"]
    failed = alerts["KebOrchestrationFailed"]["expr"]
    assert 'keb_watcher_orchestrations_finished_total{state="failed"}' in failed


# -- Grafana dashboard ----------------------------------------------------------------------


def test_dashboard_is_grafana_dashboard_json() -> None:
    board = dashboard()
    assert board["uid"] == "keb-watcher"
    assert board["title"]
    assert isinstance(board["schemaVersion"], int)
    assert board["schemaVersion"] >= 36
    assert "id" not in board or board["id"] is None, "an id ties the JSON to one Grafana"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    templated = {"type": "prometheus", "uid": "${datasource}"}
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["type"] in ("stat", "timeseries", "bargauge", "table"), panel["title"]
        assert panel["title"]
        assert panel["datasource"] == templated, panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target.get("datasource", templated) == templated
            assert 'job=~"$job"' in target["expr"], f"{panel['title']}: not filtered by $job"


def test_dashboard_has_the_panels_people_graph() -> None:
    by_title = {
        p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in dashboard()["panels"]
    }
    wanted = {
        "Orchestrations by state": "keb_watcher_orchestrations{",
        "Operations finished per minute": "keb_watcher_operations_finished_total",
        "Failed operations by reason": "keb_watcher_operation_failures",
        "KEB request latency": "keb_watcher_keb_request_duration_seconds_bucket",
        "KEB requests and errors": "keb_watcher_keb_requests_total",
        "Outbox depth": "keb_watcher_outbox_notifications",
    }
    for title, metric in wanted.items():
        assert metric in by_title[title], title


# -- kustomize: both components on the base -------------------------------------------------


def build_with_components(tmp_path: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize`` of an overlay of the base with both components."""
    kubectl = tool("kubectl")
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    base, monitoring, refresh = (
        os.path.relpath(path, overlay) for path in (K8S, MONITORING, TOKEN_REFRESH)
    )
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {base}\ncomponents:\n  - {monitoring}\n  - {refresh}\n"
    )
    done = subprocess.run(
        [kubectl, "kustomize", str(overlay)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert yaml is not None
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def test_components_are_listed_but_off_in_the_base() -> None:
    text = (K8S / "kustomization.yaml").read_text()
    assert "#   - monitoring" in text
    assert "#   - token-refresh" in text
    for component in (MONITORING, TOKEN_REFRESH):
        (doc,) = documents(component / "kustomization.yaml")
        assert doc["kind"] == "Component"
        assert doc["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"


@needs_yaml
def test_kustomize_builds_the_base_with_both_components(tmp_path: Path) -> None:
    docs = build_with_components(tmp_path)
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == [
        "ConfigMap",
        "ConfigMap",
        "ConfigMap",
        "CronJob",
        "Deployment",
        "PersistentVolumeClaim",
        "PrometheusRule",
        "Service",
        "ServiceMonitor",
    ]
    maps = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "ConfigMap"}
    board = maps["keb-watcher-dashboard"]
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(board["data"]["keb-watcher-dashboard.json"]) == dashboard()
    (script_map,) = (m for name, m in maps.items() if name.startswith("keb-token-refresh-"))
    assert (
        script_map["data"]["keb-token-refresh.py"]
        == (TOKEN_REFRESH / "keb-token-refresh.py").read_text()
    )

    workloads = {doc["kind"]: doc for doc in docs if doc["kind"] in ("Deployment", "CronJob")}
    pods = {
        "Deployment": workloads["Deployment"]["spec"]["template"]["spec"],
        "CronJob": workloads["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"],
    }
    for kind, pod in pods.items():
        volumes = {v["name"]: v for v in pod["volumes"]}
        token = volumes["keb-token"]
        assert "secret" not in token, f"{kind}: the token volume is still the Secret"
        assert token["emptyDir"]["medium"] == "Memory"
        assert volumes["keb-token-refresh"]["configMap"]["name"] == script_map["metadata"]["name"]
        (first,) = pod["initContainers"]
        assert first["command"][-1] == "--once"
        watcher = next(c for c in pod["containers"] if c["name"] == "watcher")
        mount = next(m for m in watcher["volumeMounts"] if m["name"] == "keb-token")
        assert mount["readOnly"] is True
        for box in [*pod["initContainers"], *pod["containers"]]:
            assert box["securityContext"]["readOnlyRootFilesystem"] is True
            assert box["image"] == watcher["image"]
            env = {var["name"]: var for var in box.get("env", [])}
            if box["name"] != "watcher":
                token_file = env["TOKEN_FILE"]["value"]
                written = next(m for m in box["volumeMounts"] if m["name"] == "keb-token")
                assert token_file.startswith(written["mountPath"] + "/")
                assert token_file.startswith(mount["mountPath"] + "/")
                assert env["OIDC_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == (
                    "keb-watcher-oidc"
                )
    sidecars = {c["name"] for c in pods["Deployment"]["containers"]}
    assert sidecars == {"watcher", "keb-token-refresh"}
    assert [c["name"] for c in pods["CronJob"]["containers"]] == ["watcher"]
    (secret,) = documents(TOKEN_REFRESH / "oidc-secret.example.yaml")
    assert {"client-id", "client-secret"} <= set(secret["stringData"])
    assert all("REPLACE" in value for value in secret["stringData"].values())

    validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is absent")
    for doc in [*docs, secret]:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: no schema offline; checked structurally above
        try:
            validate.validate(doc, "1.30", strict=True)
        except validate.ValidationError as exc:  # pragma: no cover - on failure
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {exc.message}")


def test_kubernetes_validate_needs_no_network() -> None:
    """The schemas ship inside the package: nothing is fetched (``dev`` extras install it)."""
    validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is absent")
    with pytest.raises(validate.ValidationError):
        validate.validate(
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"nope": 1}},
            "1.30",
            strict=True,
        )
