"""The deployment recipes in ``deploy/``: parsed, cross-checked against each other and against
the configuration loader, and verified by the real tools where this machine has them.

Tools that are not project dependencies make their test skip, with the reason, when absent:
PyYAML (in the ``dev`` extras), ``systemd-analyze``, ``kubectl`` (for ``kubectl kustomize``),
``kubernetes-validate`` (JSON schemas of the Kubernetes API) and ``hatchling`` (to build the
wheel as the Dockerfile's build stage does).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from apscheduler.triggers.cron import CronTrigger

from watcher.config import Config, load_config, open_service_warning
from watcher.errors import ConfigError
from watcher.store.database import Store

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML comes with the dev extras
    yaml = None

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SYSTEMD = DEPLOY / "systemd"
K8S = DEPLOY / "kubernetes"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
CRONTAB = DEPLOY / "cron" / "keb-watcher.crontab"

# The layout every recipe shares.
CONFIG_PATH = "/etc/keb-watcher/watcher.toml"
ENV_FILE = "/etc/keb-watcher/env"
STATE_DIR = "/var/lib/keb-watcher"
DB_PATH = f"{STATE_DIR}/watcher.db"
BINARY = "/opt/keb-watcher/bin/watcher"
SECRET_ENV = {"KEB_TOKEN": "test-keb-token", "SLACK_BOT_TOKEN": "xoxb-test-token"}

needs_yaml = pytest.mark.skipif(
    yaml is None, reason="PyYAML is not installed (pip install -e '.[dev]')"
)


def tool(name: str) -> str:
    """The path of a command-line tool, or skip the test that needs it."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed on this machine")
    return path


# -- configuration files -------------------------------------------------------------------


def load(path: Path, env: dict[str, str] | None = None) -> Config:
    """``load_config`` with the secrets' variables set (``env``, else :data:`SECRET_ENV`)."""
    return load_config(path, SECRET_ENV if env is None else env)


def deploy_port() -> int:
    """The port of ``[service] listen`` in deploy/watcher.toml."""
    service = tomllib.loads((DEPLOY / "watcher.toml").read_text())["service"]
    return int(service["listen"].rpartition(":")[2])


def configmap_toml(tmp_path: Path) -> Path:
    """The ``watcher.toml`` of the Kubernetes ConfigMap, written to a file."""
    (configmap,) = documents(K8S / "configmap.yaml")
    path = tmp_path / "watcher.toml"
    path.write_text(configmap["data"]["watcher.toml"])
    return path


def test_deploy_config_loads_with_its_variables_set() -> None:
    config = load(DEPLOY / "watcher.toml")
    assert str(config.storage.path) == DB_PATH
    assert config.keb.token is not None
    assert config.keb.token.reveal() == "test-keb-token"
    assert config.slack.token is not None
    assert config.slack.token.reveal() == "xoxb-test-token"
    assert config.service.listen is not None


@pytest.mark.parametrize("missing", sorted(SECRET_ENV))
def test_deploy_config_takes_its_secrets_from_the_environment(missing: str) -> None:
    env = {k: v for k, v in SECRET_ENV.items() if k != missing}
    with pytest.raises(ConfigError, match=re.escape(missing)):
        load_config(DEPLOY / "watcher.toml", env)


@needs_yaml
def test_configmap_config_loads(tmp_path: Path) -> None:
    env = {
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "WATCHER_DASHBOARD_TOKEN": "dashboard-test-token",
        "WATCHER_METRICS_TOKEN": "metrics-test-token",
    }
    config = load(configmap_toml(tmp_path), env)
    assert str(config.storage.path) == DB_PATH
    assert config.keb.token is None
    assert config.keb.token_file is not None
    assert config.service.listen is not None
    host, _, port = config.service.listen.rpartition(":")
    assert host == "0.0.0.0", "the kubelet probes the pod's IP, not its loopback"
    assert int(port) == deploy_port(), "one port everywhere (the image's EXPOSE and health check)"
    # Beyond loopback, so both tokens come from the Secret (as environment variables).
    assert config.service.dashboard_token is not None
    assert config.service.dashboard_token.reveal() == "dashboard-test-token"
    assert config.service.metrics_token is not None
    assert config.service.metrics_token.reveal() == "metrics-test-token"
    assert open_service_warning(config) is None


# -- YAML and Kubernetes -------------------------------------------------------------------


def documents(path: Path) -> list[dict[str, Any]]:
    assert yaml is not None
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    for doc in docs:
        assert isinstance(doc, dict), f"{path.name}: a document is not a mapping"
    return docs


def kustomization() -> dict[str, Any]:
    (doc,) = documents(K8S / "kustomization.yaml")
    return doc


def manifests(*names: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name in names:
        for doc in documents(K8S / name):
            yield name, doc


def resource_names() -> list[str]:
    return [str(name) for name in kustomization()["resources"]]


def one(kind: str) -> dict[str, Any]:
    found = [doc for _, doc in manifests(*resource_names()) if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind} among the kustomization's resources"
    return found[0]


def pod_specs() -> dict[str, dict[str, Any]]:
    return {
        "Deployment": one("Deployment")["spec"]["template"]["spec"],
        "CronJob": one("CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"],
    }


def container(pod: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod["containers"]
    return dict(only)


def listen_port() -> int:
    (configmap,) = documents(K8S / "configmap.yaml")
    service = tomllib.loads(configmap["data"]["watcher.toml"])["service"]
    return int(service["listen"].rpartition(":")[2])


@needs_yaml
def test_every_yaml_file_parses() -> None:
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert {path.name for path in files} >= {
        "deployment.yaml",
        "pvc.yaml",
        "configmap.yaml",
        "secret.example.yaml",
        "cronjob.yaml",
        "kustomization.yaml",
        "service.yaml",
        "servicemonitor.yaml",
        "prometheusrule.yaml",
    }
    for path in files:
        assert documents(path), f"{path.name} is empty"


API_VERSIONS = {
    "ConfigMap": "v1",
    "Secret": "v1",
    "PersistentVolumeClaim": "v1",
    "Service": "v1",
    "Deployment": "apps/v1",
    "CronJob": "batch/v1",
}
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


@needs_yaml
def test_manifests_have_kind_api_version_and_metadata() -> None:
    names = sorted(path.name for path in K8S.glob("*.yaml") if path.name != "kustomization.yaml")
    for name, doc in manifests(*names):
        kind = doc.get("kind")
        assert kind in API_VERSIONS, f"{name}: unexpected kind {kind!r}"
        assert doc.get("apiVersion") == API_VERSIONS[kind], f"{name}: apiVersion of {kind}"
        assert DNS_LABEL.fullmatch(doc["metadata"]["name"]), f"{name}: metadata.name"
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "keb-watcher"
        if kind in ("ConfigMap", "Secret"):
            assert doc.get("data") or doc.get("stringData"), f"{name}: no data"
        else:
            assert "spec" in doc, f"{name}: no spec"


@needs_yaml
def test_kustomization_ties_every_manifest_but_the_example_secret() -> None:
    doc = kustomization()
    assert doc["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert doc["kind"] == "Kustomization"
    resources = resource_names()
    for name in resources:
        assert (K8S / name).is_file(), f"kustomization resource {name} does not exist"
    listed = sorted(p.name for p in K8S.glob("*.yaml")) + sorted(p.name for p in K8S.glob("*.yml"))
    assert sorted(resources) == sorted(
        set(listed) - {"kustomization.yaml", "secret.example.yaml"}
    ), "every manifest but the example Secret belongs to the kustomization"
    # `kubectl apply -k` must never replace real tokens with the placeholders.
    assert "secret.example.yaml" not in resources
    assert not doc.get("secretGenerator")


@needs_yaml
def test_deployment_is_a_single_writer() -> None:
    deployment = one("Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"]["type"] == "Recreate"
    selector = spec["selector"]["matchLabels"]
    labels = spec["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items(), "the selector must match the pod template"
    assert container(spec["template"]["spec"])["args"] == ["--config", CONFIG_PATH, "run"]


@needs_yaml
def test_probes_hit_healthz_and_readyz_on_the_listen_port() -> None:
    pod = pod_specs()["Deployment"]
    main = container(pod)
    ports = {p.get("name"): p["containerPort"] for p in main["ports"]}
    assert listen_port() in ports.values()

    def probe(kind: str) -> tuple[str, int]:
        get = main[kind]["httpGet"]
        port = get["port"]
        return get["path"], ports[port] if isinstance(port, str) else port

    assert probe("livenessProbe") == ("/healthz", listen_port())
    assert probe("readinessProbe") == ("/readyz", listen_port())


@needs_yaml
def test_cronjob_polls_with_concurrency_forbid_on_the_same_volume() -> None:
    cronjob = one("CronJob")
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    CronTrigger.from_crontab(spec["schedule"], timezone=UTC)
    pod = pod_specs()["CronJob"]
    assert pod["restartPolicy"] in ("Never", "OnFailure")
    assert container(pod)["args"] == ["--config", CONFIG_PATH, "poll"]

    def claims(pod: dict[str, Any]) -> list[str]:
        return [
            v["persistentVolumeClaim"]["claimName"]
            for v in pod["volumes"]
            if "persistentVolumeClaim" in v
        ]

    assert claims(pod) == claims(pod_specs()["Deployment"])
    assert len(claims(pod)) == 1


@needs_yaml
@pytest.mark.parametrize("workload", ["Deployment", "CronJob"])
def test_pods_run_as_non_root_on_a_read_only_root(workload: str) -> None:
    pod = pod_specs()[workload]
    main = container(pod)
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == dockerfile_uid() != 0
    assert security["fsGroup"], "the volume must be writable by the user"
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    assert main["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert main["resources"]["requests"]
    assert main["resources"]["limits"]["memory"]
    assert pod["terminationGracePeriodSeconds"] >= 30
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in main["volumeMounts"]}
    # The writable places under a read-only root: the database volume and /tmp.
    assert "persistentVolumeClaim" in mounts[STATE_DIR]
    assert "emptyDir" in mounts["/tmp"]
    assert "configMap" in mounts[str(PurePosixPath(CONFIG_PATH).parent)]


def referenced(pod: dict[str, Any]) -> dict[str, set[tuple[str, str | None]]]:
    """ConfigMaps, Secrets and PVCs a pod uses, as (name, key or None)."""
    refs: dict[str, set[tuple[str, str | None]]] = {
        "ConfigMap": set(),
        "Secret": set(),
        "PVC": set(),
    }
    for volume in pod.get("volumes", []):
        if "configMap" in volume:
            items = volume["configMap"].get("items") or [{"key": None}]
            refs["ConfigMap"] |= {(volume["configMap"]["name"], i["key"]) for i in items}
        if "secret" in volume:
            items = volume["secret"].get("items") or [{"key": None}]
            refs["Secret"] |= {(volume["secret"]["secretName"], i["key"]) for i in items}
        if "persistentVolumeClaim" in volume:
            refs["PVC"].add((volume["persistentVolumeClaim"]["claimName"], None))
    for box in pod["containers"]:
        for var in box.get("env", []):
            source = var.get("valueFrom", {})
            if "secretKeyRef" in source:
                refs["Secret"].add((source["secretKeyRef"]["name"], source["secretKeyRef"]["key"]))
            if "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                refs["ConfigMap"].add((ref["name"], ref["key"]))
        for source in box.get("envFrom", []):
            if "secretRef" in source:
                refs["Secret"].add((source["secretRef"]["name"], None))
            if "configMapRef" in source:
                refs["ConfigMap"].add((source["configMapRef"]["name"], None))
    return refs


@needs_yaml
@pytest.mark.parametrize("workload", ["Deployment", "CronJob"])
def test_every_referenced_configmap_secret_and_claim_exists(workload: str) -> None:
    defined: dict[str, dict[str, set[str]]] = {"ConfigMap": {}, "Secret": {}, "PVC": {}}
    for _, doc in manifests(*resource_names()):
        kind = "PVC" if doc["kind"] == "PersistentVolumeClaim" else doc["kind"]
        if kind in defined:
            keys = {**doc.get("data", {}), **doc.get("stringData", {})}
            defined[kind][doc["metadata"]["name"]] = set(keys)
    # The Secret is created by hand from the example (not a kustomization resource).
    (secret,) = documents(K8S / "secret.example.yaml")
    defined["Secret"][secret["metadata"]["name"]] = set(secret["stringData"])

    refs = referenced(pod_specs()[workload])
    assert refs["ConfigMap"]
    assert refs["Secret"]
    assert refs["PVC"]
    for kind, pairs in refs.items():
        for name, key in pairs:
            assert name in defined[kind], f"{workload}: {kind} {name!r} is not defined"
            if key is not None:
                assert key in defined[kind][name], f"{workload}: {kind} {name}: no key {key!r}"


@needs_yaml
@pytest.mark.parametrize("workload", ["Deployment", "CronJob"])
def test_pod_provides_what_the_config_needs(workload: str, tmp_path: Path) -> None:
    """The config file is where --config says, the token file is mounted, ${VARS} are set."""
    pod = pod_specs()[workload]
    main = container(pod)
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in main["volumeMounts"]}
    config_dir = str(PurePosixPath(CONFIG_PATH).parent)
    assert PurePosixPath(CONFIG_PATH).name in one("ConfigMap")["data"]
    assert mounts[config_dir]["configMap"]["name"] == one("ConfigMap")["metadata"]["name"]

    text = one("ConfigMap")["data"]["watcher.toml"]
    variables = set(re.findall(r"\$\{(\w+)\}", text))
    assert variables <= {var["name"] for var in main.get("env", [])}
    config = load(configmap_toml(tmp_path), dict.fromkeys(variables, "x-secret-value"))
    assert config.keb.token_file is not None
    token = PurePosixPath(config.keb.token_file)
    secret = mounts[str(token.parent)]["secret"]
    assert token.name in {item["path"] for item in secret["items"]}
    assert str(PurePosixPath(config.storage.path).parent) == STATE_DIR


@needs_yaml
def test_example_secret_holds_placeholders_only() -> None:
    (secret,) = documents(K8S / "secret.example.yaml")
    assert secret["kind"] == "Secret"
    for key, value in secret["stringData"].items():
        assert "REPLACE" in value, f"secret.example.yaml: {key} is not a placeholder"


@needs_yaml
def test_manifests_match_the_kubernetes_schemas() -> None:
    """Strict validation (unknown fields are errors) against the API's JSON schemas."""
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed"
    )
    names = sorted(path.name for path in K8S.glob("*.yaml") if path.name != "kustomization.yaml")
    for name, doc in manifests(*names):
        try:
            kubernetes_validate.validate(doc, "1.30", strict=True)
        except kubernetes_validate.ValidationError as exc:  # pragma: no cover - on failure
            pytest.fail(f"{name}: {exc.message}")


@needs_yaml
def test_kustomize_builds() -> None:
    kubectl = tool("kubectl")
    done = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert yaml is not None
    kinds = sorted(doc["kind"] for doc in yaml.safe_load_all(done.stdout) if doc)
    assert kinds == ["ConfigMap", "CronJob", "Deployment", "PersistentVolumeClaim", "Service"]


# -- systemd -------------------------------------------------------------------------------

UNITS = ("keb-watcher.service", "keb-watcher-poll.service", "keb-watcher-poll.timer")


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as section -> key -> values (keys may repeat, as systemd allows)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in (SYSTEMD / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"{name}: keep each setting on one line"
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{name}: a setting before any [section]: {raw!r}"
        assert "=" in line, f"{name}: bad line {raw!r}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def setting(name: str, section: str, key: str) -> str:
    return unit(name)[section][key][-1]


def test_unit_files_exist() -> None:
    assert sorted(p.name for p in SYSTEMD.iterdir()) == sorted(UNITS)


@pytest.mark.parametrize(
    ("name", "command", "kind"),
    [
        ("keb-watcher.service", "run", "simple"),
        ("keb-watcher-poll.service", "poll", "oneshot"),
    ],
)
def test_service_units_run_the_watcher(name: str, command: str, kind: str) -> None:
    service = unit(name)["Service"]
    assert setting(name, "Service", "Type") == kind
    assert shlex.split(setting(name, "Service", "ExecStart")) == [
        BINARY,
        "--config",
        CONFIG_PATH,
        command,
    ]
    assert setting(name, "Service", "User") not in ("root", "0")
    assert setting(name, "Service", "EnvironmentFile") == ENV_FILE
    # The state directory holds the database of deploy/watcher.toml.
    state = setting(name, "Service", "StateDirectory")
    assert f"/var/lib/{state}" == str(load(DEPLOY / "watcher.toml").storage.path.parent)
    assert STATE_DIR in service["ReadWritePaths"]
    assert setting(name, "Service", "KillSignal") == "SIGTERM"
    assert "TimeoutStopSec" in service
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert setting(name, "Service", key) == "yes", key
    assert setting(name, "Service", "ProtectSystem") == "strict"


def test_service_unit_restarts_on_failure_but_not_on_config_errors() -> None:
    name = "keb-watcher.service"
    assert setting(name, "Service", "Restart") == "on-failure"
    assert setting(name, "Service", "RestartPreventExitStatus") == "2"
    assert setting(name, "Install", "WantedBy") == "multi-user.target"


def test_timer_starts_the_poll_unit_every_two_minutes() -> None:
    name = "keb-watcher-poll.timer"
    assert setting(name, "Timer", "Unit") == "keb-watcher-poll.service"
    assert (SYSTEMD / "keb-watcher-poll.service").is_file()
    assert setting(name, "Timer", "Persistent") == "true"
    assert setting(name, "Timer", "OnCalendar") == "*-*-* *:00/2:00"
    assert setting(name, "Install", "WantedBy") == "timers.target"


def stubbed_units(tmp_path: Path) -> list[Path]:
    """Copies of the units whose ExecStart= names an executable stub (the real binary is only
    there once installed); everything else is verified as shipped."""
    stub = tmp_path / "watcher"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    copies = []
    for name in UNITS:
        text = (SYSTEMD / name).read_text()
        assert name.endswith(".timer") or BINARY in text
        copy = tmp_path / name
        copy.write_text(text.replace(BINARY, str(stub)))
        copies.append(copy)
    return copies


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze")
    copies = stubbed_units(tmp_path)
    done = subprocess.run(
        [analyze, "verify", "--man=no", *map(str, copies)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = (done.stdout + done.stderr).strip()
    # Unknown keys and bad values are warnings with exit code 0: any line about our units fails.
    ours = [
        line
        for line in output.splitlines()
        if str(tmp_path) in line or any(name in line for name in UNITS)
    ]
    assert done.returncode == 0, output
    assert not ours, "\n".join(ours)


@pytest.mark.parametrize("name", ["keb-watcher.service", "keb-watcher-poll.service"])
def test_systemd_security_exposure_stays_low(name: str, tmp_path: Path) -> None:
    analyze = tool("systemd-analyze")
    copy = next(path for path in stubbed_units(tmp_path) if path.name == name)
    done = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if "--offline" in done.stderr and "unrecognized" in done.stderr:
        pytest.skip("this systemd-analyze has no offline security review (systemd < 250)")
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found[1]) <= 2.0, done.stdout


def test_systemd_calendar_spec_is_valid() -> None:
    analyze = tool("systemd-analyze")
    spec = setting("keb-watcher-poll.timer", "Timer", "OnCalendar")
    done = subprocess.run(
        [analyze, "calendar", "--iterations=2", spec], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    elapses = re.findall(r"(?:Next elapse|Iter\. #2): \w+ (\S+ \S+)", done.stdout)
    assert len(elapses) == 2, done.stdout
    first, second = (datetime.fromisoformat(stamp) for stamp in elapses)
    assert (second - first).total_seconds() == 120


# -- cron ----------------------------------------------------------------------------------

ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\s*=")


def cron_jobs() -> list[tuple[str, str]]:
    """(schedule, command) for each job line of the crontab."""
    jobs = []
    for raw in CRONTAB.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or ASSIGNMENT.match(line):
            continue
        fields = line.split(None, 5)
        assert len(fields) == 6, f"not 5 time fields and a command: {raw!r}"
        jobs.append((" ".join(fields[:5]), fields[5]))
    return jobs


def test_crontab_line_is_valid_and_polls_every_two_minutes() -> None:
    (job,) = cron_jobs()
    schedule, command = job
    trigger = CronTrigger.from_crontab(schedule, timezone=UTC)
    start = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)
    first = trigger.get_next_fire_time(None, start)
    second = trigger.get_next_fire_time(first, first.replace(second=1))
    assert (second - first).total_seconds() == 120
    assert "%" not in command, "cron turns % into a newline"
    assert f"{BINARY} --config {CONFIG_PATH} poll" in command
    assert f". {ENV_FILE}" in command
    assert "flock" not in command, "the lease in the database prevents overlap"


def test_crontab_command_runs_with_the_secrets_from_the_env_file(tmp_path: Path) -> None:
    """The job's shell command, with the paths moved into tmp_path: it must read the secrets
    from the env file (the environment here has none) and discard stdout."""
    ((_, command),) = cron_jobs()
    env_file = tmp_path / "env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in SECRET_ENV.items()))
    config = tmp_path / "watcher.toml"
    database = tmp_path / "watcher.db"
    config.write_text((DEPLOY / "watcher.toml").read_text().replace(DB_PATH, str(database)))
    local = (
        command.replace(BINARY, f"{shlex.quote(sys.executable)} -m watcher")
        .replace(ENV_FILE, str(env_file))
        .replace(CONFIG_PATH, str(config))
    )
    clean = {k: v for k, v in os.environ.items() if k not in SECRET_ENV and k != "WATCHER_CONFIG"}
    clean["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), clean.get("PYTHONPATH")]))

    # No database yet (nothing was tracked, or the volume is not mounted): exit 2, naming it.
    done = subprocess.run(
        ["/bin/sh", "-c", local], capture_output=True, text=True, env=clean, timeout=120
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"watcher: {database}: no database here")
    assert not database.exists()

    Store(database).close()  # what `watcher track` creates
    done = subprocess.run(
        ["/bin/sh", "-c", local],
        capture_output=True,
        text=True,
        env=clean,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""

    # Without the env file the same command fails on the unset variable (exit code 2).
    env_file.write_text("")
    done = subprocess.run(
        ["/bin/sh", "-c", local],
        capture_output=True,
        text=True,
        env=clean,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "KEB_TOKEN" in done.stderr


# -- Docker --------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends in a continuation"
    return instructions


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in dockerfile():
        if instruction[0] == "FROM":
            result.append([])
        assert result, "the Dockerfile must start with FROM"
        result[-1].append(instruction)
    return result


def final(word: str) -> list[str]:
    return [args for name, args in stages()[-1] if name == word]


def dockerfile_uid() -> int:
    (user,) = final("USER")
    return int(user.split(":")[0])


def test_dockerfile_bases_on_python_311() -> None:
    for stage in stages():
        image = stage[0][1].split()[0]
        assert image.startswith("python:3.11"), image


def test_dockerfile_runs_as_a_non_root_user() -> None:
    (user,) = final("USER")
    assert user.split(":")[0] not in ("root", "0")
    assert dockerfile_uid() > 0, "a numeric UID lets Kubernetes check runAsNonRoot"


def test_dockerfile_serves_the_service_command() -> None:
    (entrypoint,) = final("ENTRYPOINT")
    (command,) = final("CMD")
    assert json.loads(entrypoint) == ["watcher"]
    assert json.loads(command) == ["--config", CONFIG_PATH, "run"]
    (volume,) = final("VOLUME")
    assert STATE_DIR in json.loads(volume)
    (health,) = final("HEALTHCHECK")
    assert re.search(r"(^|\s)CMD\s", health), f"HEALTHCHECK {health}: no command"
    environment = " ".join(final("ENV"))
    assert "/healthz" in health + environment
    assert f"127.0.0.1:{deploy_port()}/healthz" in health + environment
    assert final("EXPOSE") == [str(deploy_port())]


SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|WEBHOOK)", re.I)
SECRET_VALUE = re.compile(r"xox[abprs]-|eyJ[A-Za-z0-9_-]{10,}|hooks\.slack\.com")


def test_dockerfile_bakes_in_no_secrets() -> None:
    text = DOCKERFILE.read_text()
    assert not SECRET_VALUE.search(text)
    for word, args in dockerfile():
        if word in ("ENV", "ARG"):
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", args) or [args.split()[0]]
            for name in names:
                assert not SECRET_NAME.search(name), f"{word} {name}: secrets come at run time"
        if word in ("COPY", "ADD"):
            assert not re.search(r"(^|\s|/)(\.?env|.*\.env|.*token.*)(\s|$)", args), args


def dockerignore_excludes(path: str) -> bool:
    """Whether the Dockerfile's ignore file keeps ``path`` (a context path) out of the build
    (last matching pattern wins; a pattern also matches what is below a matched directory)."""
    ignore = DOCKERFILE.with_name(DOCKERFILE.name + ".dockerignore")
    excluded = False
    parts = PurePosixPath(path).parts
    for raw in ignore.read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pattern.startswith("**/"):
            candidates += list(parts)
            pattern = pattern[3:]
        if any(fnmatch.fnmatchcase(candidate, pattern) for candidate in candidates):
            excluded = not negate
    return excluded


def build_sources() -> list[str]:
    """What the build stage copies from the context."""
    sources: list[str] = []
    for word, args in stages()[0]:
        if word == "COPY" and "--from" not in args:
            sources += args.split()[:-1]
    return sources


def test_dockerfile_copies_everything_the_wheel_needs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = {"pyproject.toml", project["project"]["readme"], *wheel["packages"]}
    needed |= set(wheel.get("force-include", {}))
    copied = {source.rstrip("/") for source in build_sources()}
    assert needed <= copied, f"the build stage does not copy {sorted(needed - copied)}"
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the context"
        assert not dockerignore_excludes(source), f"{source} is excluded by the ignore file"
        if (ROOT / source).is_dir():
            for path in (ROOT / source).rglob("*"):
                if path.is_file() and "__pycache__" not in path.parts:
                    relative = path.relative_to(ROOT).as_posix()
                    assert not dockerignore_excludes(relative), relative
    assert dockerignore_excludes(".venv/bin/python")
    assert dockerignore_excludes("watcher/__pycache__/cli.cpython-311.pyc")


@pytest.mark.slow
def test_dockerfile_build_stage_makes_a_complete_wheel(tmp_path: Path) -> None:
    """The build stage's `pip wheel .` on exactly what it copies: the wheel holds the package
    and its templates. (Needs hatchling installed: no download during tests.)"""
    pytest.importorskip("hatchling", reason="hatchling is not installed (the build backend)")
    context = tmp_path / "src"
    context.mkdir()
    for source in build_sources():
        origin = ROOT / source.rstrip("/")
        if origin.is_dir():
            shutil.copytree(origin, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, context / source)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path / "wheels"),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = (tmp_path / "wheels").glob("*.whl")
    names = zipfile.ZipFile(built).namelist()
    assert "watcher/cli.py" in names
    assert any(name.startswith("watcher/_templates/") for name in names)
    # The dashboard's pages and assets ship too: nothing is fetched from the internet.
    for asset in ("templates/overview.html", "templates/detail.html", "static/dashboard.js"):
        assert f"watcher/faces/web/{asset}" in names
    assert "watcher/faces/web/static/dashboard.css" in names
    assert any(name.endswith("entry_points.txt") for name in names)
