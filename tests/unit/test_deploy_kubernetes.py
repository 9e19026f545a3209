"""The Helm chart and the plain manifests of deploy/: schema-valid, and a DaemonSet that can work.

The chart is rendered by Helm's own Go engine (helm-python-sdk), so what is checked here is
what `helm template` / `helm install` would produce; deploy/kubernetes/sysward.yaml must be
that rendering (deploy/render_manifests.py writes it).  Every object is validated against the
Kubernetes OpenAPI schemas shipped by kubernetes-validate, in strict mode (unknown fields are
errors), for the oldest and the newest Kubernetes version the chart supports.
"""

from __future__ import annotations

import importlib.util
import platform
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "deploy" / "kubernetes" / "sysward.yaml"
K8S_VERSIONS = ("1.30", "1.37")  # Chart.yaml: kubeVersion >= 1.30 (appArmorProfile field)
BASE_CAPS = {"BPF", "PERFMON", "SYS_RESOURCE", "SYS_PTRACE"}

if platform.machine() != "x86_64":  # helm-python-sdk ships wheels for x86_64 Linux only (for now)
    pytest.skip("helm-python-sdk has no wheel for this architecture", allow_module_level=True)

import helm_python  # noqa: E402  (dev dependency; after the architecture gate)
import kubernetes_validate  # noqa: E402

# The keys of config.yaml, as agreed in the configuration spec (docs/configuration.md).
SPEC_KEYS = {
    "rules", "rules_defaults", "min_priority", "hostname",
    "outputs.stdout.enabled", "outputs.stdout.format",
    "outputs.file.enabled", "outputs.file.path", "outputs.file.max_size_mb", "outputs.file.backups",
    "outputs.syslog.enabled", "outputs.syslog.address", "outputs.syslog.facility",
    "outputs.http.enabled", "outputs.http.url", "outputs.http.timeout_s",
    "outputs.http.batch_size", "outputs.http.flush_interval_s", "outputs.http.max_retries",
    "outputs.http.backoff_s", "outputs.http.queue_size", "outputs.http.headers",
    "outputs.sqlite.enabled", "outputs.sqlite.path", "outputs.sqlite.retention_hours",
    "outputs.sqlite.max_size_mb",
    "rate_limit.rate", "rate_limit.burst",
    "kernel.ringbuf_mb", "kernel.drain_interval_ms", "kernel.wakeup_fraction",
    "pipeline.queue_size",
    "process_table.max_mb", "process_table.max_processes", "process_table.exit_grace_s",
    "server.enabled", "server.listen",
    "stats_interval_s",
    "enforce.mode", "enforce.never_kill", "enforce.deny_fallback_kill",
    "filters.ignore_comms", "filters.containers_only",
    "filters.namespaces.include", "filters.namespaces.exclude",
    "filters.labels.include", "filters.labels.exclude",
    "cri.enabled", "cri.sockets", "cri.host_root", "cri.timeout_s", "cri.max_containers",
    "cri.refresh_s",
}  # fmt: skip

# Every option the chart has a branch for, turned on at once.
ALL_OPTIONS: dict[str, Any] = {
    "config": {
        "hostname": "edge-7",
        "min_priority": "warning",
        "outputs": {
            "http": {"enabled": True, "url": "http://falcosidekick.falco.svc:2801/"},
            "syslog": {"enabled": True, "address": "/dev/log"},
            "file": {"enabled": True, "path": "/var/log/sysward/alerts.jsonl"},
        },
        "kernel": {"ringbuf_mb": 64},
        "pipeline": {"queue_size": 50000},
        "enforce": {"mode": "on"},
        "filters": {"containers_only": True, "ignore_comms": ["node_exporter"],
                    "namespaces": {"exclude": ["kube-system"]},
                    "labels": {"include": ["app=web"]}},
    },
    "customRules": {"50-site.yaml": "- list: site_shells\n  items: [bash, zsh]\n"},
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "securityContext": {"sysAdmin": False},
    "priorityClassName": "system-node-critical",
    "image": {"repository": "registry.example/sysward", "tag": "dev"},
}


def _render_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "render_manifests", REPO / "deploy" / "render_manifests.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RENDER = _render_module()


def _docs(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    rendered = RENDER.render_chart(values)
    return [doc for name in sorted(rendered) for doc in _docs(rendered[name])]


SOURCES: dict[str, list[dict[str, Any]]] = {
    "plain-manifests": _docs(MANIFEST.read_text()),
    "chart-defaults": _render(),
    "chart-all-options": _render(ALL_OPTIONS),
}


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = _one(docs, "DaemonSet")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["sysward"]
    container: dict[str, Any] = containers[0]
    return container


def _config(docs: list[dict[str, Any]]) -> dict[str, Any]:
    cfg = yaml.safe_load(_one(docs, "ConfigMap")["data"]["config.yaml"])
    assert isinstance(cfg, dict)
    return cfg


def _leaf_keys(node: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in node.items():
        # outputs.http.headers is a free-form mapping: a leaf, not a section.
        if isinstance(value, dict) and f"{prefix}{key}" != "outputs.http.headers":
            keys |= _leaf_keys(value, f"{prefix}{key}.")
        else:
            keys.add(prefix + key)
    return keys


# -- the plain manifests are the chart ------------------------------------------------------


def test_plain_manifests_are_the_current_chart_rendering() -> None:
    assert MANIFEST.read_text() == RENDER.plain_manifests(), (
        "deploy/kubernetes/sysward.yaml is stale: run python deploy/render_manifests.py"
    )


def test_plain_manifests_hold_the_namespace_and_every_chart_object() -> None:
    plain = SOURCES["plain-manifests"]
    assert [d["kind"] for d in plain] == [
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Service",
        "DaemonSet",
    ]
    ns = plain[0]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert {d["metadata"]["namespace"] for d in plain[1:]} == {ns["metadata"]["name"]}
    chart = {(d["kind"], d["metadata"]["name"]): d for d in SOURCES["chart-defaults"]}
    assert {(d["kind"], d["metadata"]["name"]): d for d in plain[1:]} == chart


# -- schema ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_objects_validate_against_the_kubernetes_schema(source: str, version: str) -> None:
    checked = 0
    for doc in SOURCES[source]:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD of prometheus-operator: not in Kubernetes' schemas (checked below)
        kubernetes_validate.validate(doc, version, strict=True)
        checked += 1
    assert checked >= 4


def test_the_schema_check_rejects_a_misspelled_field() -> None:
    ds = _one(_render(), "DaemonSet")
    ds["spec"]["template"]["spec"]["hostPid"] = True
    with pytest.raises(kubernetes_validate.ValidationError, match="hostPid"):
        kubernetes_validate.validate(ds, K8S_VERSIONS[-1], strict=True)


def test_chart_lints_without_warnings() -> None:
    for values in (None, ALL_OPTIONS):
        report = helm_python.lint(RENDER.CHART, values, strict=True, kube_version="v1.30.0")
        assert report["errors"] == []
        # severity 1 = info ("icon is recommended"); 2 = warning, 3 = error
        assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"config": {"outputs": {"htp": {"url": "http://x"}}}}, "htp"),
        ({"config": {"enforce": {"mode": "kill"}}}, "mode"),
        ({"config": {"kernel": {"ringbuf_mb": "big"}}}, "ringbuf_mb"),
        ({"config": {"server": {"listen": "0.0.0.0:1"}}}, "server"),  # owned by the chart
        ({"tolerations": {"operator": "Exists"}}, "tolerations"),
    ],
)
def test_values_schema_refuses_bad_values_at_install_time(
    values: dict[str, Any], named: str
) -> None:
    with pytest.raises(helm_python.HelmError, match=named):
        RENDER.render_chart(values)


# -- the DaemonSet's essentials -------------------------------------------------------------


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_daemonset_can_load_bpf_and_see_the_node(source: str) -> None:
    docs = SOURCES[source]
    pod = _one(docs, "DaemonSet")["spec"]["template"]["spec"]
    c = _container(docs)
    assert pod["hostPID"] is True
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "Unconfined"}
    sc = c["securityContext"]
    assert sc["runAsUser"] == 0 and sc["privileged"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc["appArmorProfile"] == {"type": "Unconfined"}
    assert set(sc["capabilities"]["add"]) >= BASE_CAPS
    # The API server refuses allowPrivilegeEscalation=false together with CAP_SYS_ADMIN.
    assert not (
        "SYS_ADMIN" in sc["capabilities"]["add"] and sc.get("allowPrivilegeEscalation") is False
    )

    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for path in (
        "/sys/kernel/btf",
        "/sys/kernel/tracing",
        "/sys/kernel/debug",
        "/sys/fs/cgroup",
        "/var/lib/sysward",
    ):
        assert path in mounts, f"{path} not mounted"
        assert volumes[mounts[path]["name"]]["hostPath"]["path"] == path
    for path in ("/sys/kernel/btf", "/sys/kernel/tracing", "/sys/kernel/debug", "/sys/fs/cgroup"):
        assert mounts[path].get("readOnly") is True
    assert not mounts["/var/lib/sysward"].get("readOnly", False)  # the sqlite store
    assert volumes[mounts["/etc/sysward"]["name"]]["configMap"]["items"][0] == {
        "key": "config.yaml",
        "path": "config.yaml",
    }

    assert {"operator": "Exists"} in pod["tolerations"]  # every node, tainted ones too
    assert c["resources"]["requests"] == c["resources"]["limits"]  # Guaranteed QoS


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_probes_and_metrics_port_match_the_agent_listen_address(source: str) -> None:
    docs = SOURCES[source]
    c = _container(docs)
    cfg = _config(docs)
    assert cfg["server"] == {"enabled": True, "listen": "0.0.0.0:8765"}
    port = int(cfg["server"]["listen"].rpartition(":")[2])
    assert c["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    svc = _one(docs, "Service")
    assert svc["spec"]["ports"][0]["port"] == port
    assert svc["spec"]["ports"][0]["targetPort"] == "metrics"
    assert svc["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert svc["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    pod_labels = _one(docs, "DaemonSet")["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_agent_runs_with_the_mounted_config(source: str) -> None:
    docs = SOURCES[source]
    args = _container(docs)["args"]
    assert args[:3] == ["run", "--config", "/etc/sysward/config.yaml"]
    if _config(docs)["hostname"] == "":
        assert args[3:5] == ["--set", "hostname=$(SYSWARD_NODE_NAME)"]
        env = {e["name"]: e for e in _container(docs)["env"]}
        assert env["SYSWARD_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    else:
        assert "--set" not in args


# -- config.yaml -------------------------------------------------------------------------------


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_config_yaml_has_exactly_the_spec_keys(source: str) -> None:
    assert _leaf_keys(_config(SOURCES[source])) == SPEC_KEYS


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_config_yaml_loads_in_the_agent(source: str, tmp_path: Path) -> None:
    from sysward.config import all_keys, load_config

    assert set(all_keys()) >= SPEC_KEYS  # the agent knows every key the chart writes
    path = tmp_path / "config.yaml"
    path.write_text(_one(SOURCES[source], "ConfigMap")["data"]["config.yaml"])
    config = load_config(str(path), {"hostname": "node-1"})
    assert config.server.listen == "0.0.0.0:8765"
    assert config.rules == _config(SOURCES[source])["rules"]
    assert config.hostname == "node-1"
    assert config.enforce.mode in ("off", "on")


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_every_rules_path_exists_in_the_pod(source: str) -> None:
    """A rules path missing in the pod stops the agent at start ("does not exist")."""
    docs = SOURCES[source]
    pod = _one(docs, "DaemonSet")["spec"]["template"]["spec"]
    items = next(v for v in pod["volumes"] if v["name"] == "config")["configMap"]["items"]
    projected = {"/etc/sysward/" + item["path"] for item in items}
    for path in _config(docs)["rules"]:
        assert any(p.startswith(path.rstrip("/") + "/") or p == path for p in projected), path
    assert set(_one(docs, "ConfigMap")["data"]) == {item["key"] for item in items}


def test_values_reach_config_yaml() -> None:
    cfg = _config(SOURCES["chart-all-options"])
    assert cfg["min_priority"] == "warning"
    assert cfg["outputs"]["http"] == {
        **_config(SOURCES["chart-defaults"])["outputs"]["http"],
        "enabled": True,
        "url": "http://falcosidekick.falco.svc:2801/",
    }
    assert cfg["kernel"]["ringbuf_mb"] == 64
    assert cfg["pipeline"]["queue_size"] == 50000
    assert cfg["filters"] == {"containers_only": True, "ignore_comms": ["node_exporter"],
                              "namespaces": {"include": [], "exclude": ["kube-system"]},
                              "labels": {"include": ["app=web"], "exclude": []}}
    assert "/usr/bin/kubelet" in cfg["enforce"]["never_kill"]


def test_custom_rules_land_in_rules_d_after_the_defaults() -> None:
    docs = SOURCES["chart-all-options"]
    cm = _one(docs, "ConfigMap")
    assert cm["data"]["50-site.yaml"] == ALL_OPTIONS["customRules"]["50-site.yaml"]
    cfg = _config(docs)
    assert cfg["rules_defaults"] is True and cfg["rules"] == ["/etc/sysward/rules.d"]
    pod = _one(docs, "DaemonSet")["spec"]["template"]["spec"]
    items = next(v for v in pod["volumes"] if v["name"] == "config")["configMap"]["items"]
    assert {"key": "50-site.yaml", "path": "rules.d/50-site.yaml"} in items


def test_a_config_change_rolls_the_agents() -> None:
    def checksum(docs: list[dict[str, Any]]) -> str:
        ds = _one(docs, "DaemonSet")
        return str(ds["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum(_render({"config": {"min_priority": "notice"}})) != checksum(_render())
    assert checksum(_render({"customRules": {"a.yaml": "[]"}})) != checksum(_render())


# -- values that change the pod ---------------------------------------------------------------


def test_enforcement_and_sys_admin_switch_capabilities() -> None:
    caps_default = set(
        _container(SOURCES["chart-defaults"])["securityContext"]["capabilities"]["add"]
    )
    assert caps_default == BASE_CAPS | {"SYS_ADMIN"}
    sc = _container(SOURCES["chart-all-options"])["securityContext"]  # enforce on, sysAdmin off
    assert set(sc["capabilities"]["add"]) == BASE_CAPS | {"KILL", "NET_ADMIN"}
    assert sc["allowPrivilegeEscalation"] is False
    audit = _render({"config": {"enforce": {"mode": "audit"}}})
    assert "KILL" not in _container(audit)["securityContext"]["capabilities"]["add"]


def test_syslog_socket_and_alert_log_directory_come_from_the_node() -> None:
    docs = SOURCES["chart-all-options"]
    pod = _one(docs, "DaemonSet")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in _container(docs)["volumeMounts"]}
    assert volumes[mounts["/dev/log"]]["hostPath"] == {"path": "/dev/log", "type": "Socket"}
    assert volumes[mounts["/var/log/sysward"]]["hostPath"]["path"] == "/var/log/sysward"
    # a UDP syslog address needs no socket from the node
    udp = _render(
        {"config": {"outputs": {"syslog": {"enabled": True, "address": "127.0.0.1:514"}}}}
    )
    assert "/dev/log" not in {m["mountPath"] for m in _container(udp)["volumeMounts"]}
    assert "/dev/log" not in {
        m["mountPath"] for m in _container(SOURCES["chart-defaults"])["volumeMounts"]
    }


def test_service_monitor_scrapes_the_metrics_port_of_every_agent() -> None:
    docs = SOURCES["chart-all-options"]
    sm = _one(docs, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    assert (
        sm["spec"]["selector"]["matchLabels"].items()
        <= _one(docs, "Service")["metadata"]["labels"].items()
    )
    assert _one(docs, "Service")["spec"]["clusterIP"] == "None"  # every pod, not one
    assert not [d for d in SOURCES["chart-defaults"] if d["kind"] == "ServiceMonitor"]


def test_image_and_priority_class_values() -> None:
    docs = SOURCES["chart-all-options"]
    assert _container(docs)["image"] == "registry.example/sysward:dev"
    assert _one(docs, "DaemonSet")["spec"]["template"]["spec"]["priorityClassName"] == (
        "system-node-critical"
    )
    chart = yaml.safe_load((RENDER.CHART / "Chart.yaml").read_text())
    assert _container(SOURCES["chart-defaults"])["image"] == f"sysward:{chart['appVersion']}"


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_cri_sockets_are_reachable_in_the_pod(source: str) -> None:
    """Every configured CRI socket lies in the node directory the pod mounts, read-only."""
    docs = SOURCES[source]
    cri = _config(docs)["cri"]
    assert cri["enabled"] and cri["host_root"] == "/host"
    mounts = {m["name"]: m for m in _container(docs)["volumeMounts"]}
    volumes = {v["name"]: v for v in _one(docs, "DaemonSet")["spec"]["template"]["spec"]["volumes"]}
    assert mounts["host-run"]["mountPath"] == "/host/run" and mounts["host-run"]["readOnly"]
    assert volumes["host-run"]["hostPath"]["path"] == "/run"
    for sock in cri["sockets"]:
        assert (cri["host_root"] + sock).startswith(mounts["host-run"]["mountPath"] + "/")


def test_cri_off_mounts_nothing_of_the_node_run() -> None:
    docs = _render({"config": {"cri": {"enabled": False}}})
    assert "host-run" not in {m["name"] for m in _container(docs)["volumeMounts"]}
