#!/usr/bin/env python3
"""Checks of the rendered Kubernetes manifests that a schema cannot make (scripts/lint-deploy.sh).

    check-k8s.py --rendered DIR --repo REPO --rules-out FILE

For every rendered overlay (DIR/*.yaml):
  - every object is of a kind kubernetes-validate checks, or a Prometheus Operator kind
    validated here against its CRD schema (deploy/schemas, unknown fields refused);
  - every pod template: runAsNonRoot, a fixed non-root UID, seccomp RuntimeDefault, no
    service-account token, and per container readOnlyRootFilesystem, no privilege
    escalation, all capabilities dropped, no secret in an environment variable;
  - the API (pods labelled scanvault.io/api) has readiness on /ready, liveness on /health
    and requests equal to limits (Guaranteed QoS); in scale-out at least 2 replicas, zone
    and node topology spread, a PodDisruptionBudget;
  - the worker runs on its node pool (nodeSelector and toleration), is Burstable, stops
    later than SHUTDOWN_TIMEOUT, and has an HPA on CPU and on scanvault_jobs_queued with
    scale-up and scale-down stabilisation windows;
  - a NetworkPolicy denies all ingress and egress by default.
Then: the alert rules (the PrometheusRule's groups) are written to FILE for promtool, and
every scanvault_* metric the rules, the Grafana dashboard and the Prometheus Adapter rule
name is exported by the service (listed in docs/metrics.md).
"""
import argparse
import copy
import glob
import json
import os
import re
import sys

import jsonschema
import yaml

CORE_KINDS = {
    "Namespace", "ServiceAccount", "ConfigMap", "Service", "StatefulSet", "Deployment",
    "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy",
}
CRDS = {
    "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml",
    "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml",
}
errors = []


def fail(where, msg):
    errors.append(f"{where}: {msg}")


def strict(schema):
    """The CRD schema with unknown properties refused (the API server would prune them)."""
    schema = copy.deepcopy(schema)

    def walk(s):
        if isinstance(s, dict):
            if (
                s.get("type") == "object"
                and "properties" in s
                and "additionalProperties" not in s
                and not s.get("x-kubernetes-preserve-unknown-fields")
            ):
                s["additionalProperties"] = False
            for v in s.values():
                walk(v)
        elif isinstance(s, list):
            for v in s:
                walk(v)

    walk(schema)
    return schema


def crd_validator(repo, kind):
    crd = yaml.safe_load(open(os.path.join(repo, "deploy/schemas", CRDS[kind])))
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema = strict(version["schema"]["openAPIV3Schema"])
    # metadata is the API server's; apiVersion and kind are checked below.
    schema["properties"]["metadata"] = {"type": "object"}
    return jsonschema.Draft7Validator(schema)


def pod_spec(obj):
    if obj["kind"] in ("Deployment", "StatefulSet"):
        return obj["spec"]["template"]
    return None


def quantities_equal(a, b):
    return {k: str(v) for k, v in (a or {}).items()} == {k: str(v) for k, v in (b or {}).items()}


def duration_seconds(text):
    total, n = 0, ""
    units = {"h": 3600, "m": 60, "s": 1}
    for ch in text:
        if ch.isdigit():
            n += ch
        else:
            total += int(n) * units[ch]
            n = ""
    return total


def check_pod(where, template):
    spec = template["spec"]
    psc = spec.get("securityContext", {})
    if spec.get("automountServiceAccountToken") is not False:
        fail(where, "automountServiceAccountToken is not false")
    if psc.get("runAsNonRoot") is not True:
        fail(where, "pod securityContext.runAsNonRoot is not true")
    if not isinstance(psc.get("runAsUser"), int) or psc["runAsUser"] == 0:
        fail(where, "pod securityContext.runAsUser is not a fixed non-root UID")
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        fail(where, "pod seccompProfile is not RuntimeDefault")
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        cw = f"{where} container {c['name']}"
        sc = c.get("securityContext", {})
        if sc.get("readOnlyRootFilesystem") is not True:
            fail(cw, "readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            fail(cw, "allowPrivilegeEscalation is not false")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            fail(cw, "capabilities.drop is not [ALL]")
        for env in c.get("env", []):
            if "secretKeyRef" in env.get("valueFrom", {}):
                fail(cw, f"secret in the environment ({env['name']}): mount it and use *_FILE")
        for ef in c.get("envFrom", []):
            if "secretRef" in ef:
                fail(cw, "secret in the environment (envFrom): mount it and use *_FILE")


def env_of(container, name):
    for env in container.get("env", []):
        if env["name"] == name:
            return env.get("value")
    return None


def check_overlay(path, repo, validators):
    name = os.path.basename(path)[: -len(".yaml")]
    objs = [o for o in yaml.safe_load_all(open(path)) if o]
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
        where = f"{name}: {o['kind']}/{o['metadata']['name']}"
        if o["kind"] in CRDS:
            if o["apiVersion"] != "monitoring.coreos.com/v1":
                fail(where, f"apiVersion {o['apiVersion']}")
            for e in validators[o["kind"]].iter_errors(o):
                fail(where, f"{'/'.join(map(str, e.path))}: {e.message}")
        elif o["kind"] not in CORE_KINDS:
            fail(where, "a kind neither kubernetes-validate nor this script checks")
        if o["kind"] != "Namespace" and o["metadata"].get("namespace") != "scanvault":
            fail(where, "not in the scanvault namespace")
        t = pod_spec(o)
        if t:
            check_pod(where, t)

    if not any(
        p["spec"].get("podSelector") == {} and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress") and not p["spec"].get("egress")
        for p in by_kind.get("NetworkPolicy", [])
    ):
        fail(name, "no default-deny NetworkPolicy for ingress and egress")

    workloads = by_kind.get("Deployment", []) + by_kind.get("StatefulSet", [])
    api = [w for w in workloads if w["spec"]["template"]["metadata"]["labels"].get("scanvault.io/api") == "true"]
    if not api:
        fail(name, "no workload serves the API")
    for w in api:
        where = f"{name}: {w['kind']}/{w['metadata']['name']}"
        for c in w["spec"]["template"]["spec"]["containers"]:
            if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/ready":
                fail(where, "readiness probe is not /ready")
            if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/health":
                fail(where, "liveness probe is not /health")
            res = c.get("resources", {})
            if not res.get("limits") or not quantities_equal(res.get("requests"), res.get("limits")):
                fail(where, "requests differ from limits (not Guaranteed QoS)")
    if name == "single-node":
        sts = by_kind.get("StatefulSet", [])
        if len(sts) != 1 or sts[0]["spec"]["replicas"] != 1 or not sts[0]["spec"].get("volumeClaimTemplates"):
            fail(name, "not one StatefulSet of one replica with a PersistentVolume")
        for c in (sts[0]["spec"]["template"]["spec"]["containers"] if sts else []):
            if env_of(c, "DATABASE_URL_FILE") or env_of(c, "DATABASE_URL"):
                fail(name, "single-node must use the embedded SQLite database")
    if name == "scale-out":
        check_scale_out(name, by_kind, api)
    return objs


def check_scale_out(name, by_kind, api):
    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    for w in api:
        where = f"{name}: Deployment/{w['metadata']['name']}"
        if w["kind"] != "Deployment" or w["spec"]["replicas"] < 2:
            fail(where, "the API is not a Deployment of at least 2 replicas")
        keys = {t["topologyKey"] for t in w["spec"]["template"]["spec"].get("topologySpreadConstraints", [])}
        if not {"topology.kubernetes.io/zone", "kubernetes.io/hostname"} <= keys:
            fail(where, "no topology spread across zones and nodes")
        labels = w["spec"]["selector"]["matchLabels"]
        if not any(p["spec"]["selector"].get("matchLabels") == labels for p in by_kind.get("PodDisruptionBudget", [])):
            fail(where, "no PodDisruptionBudget")
        for c in w["spec"]["template"]["spec"]["containers"]:
            if env_of(c, "DATABASE_URL_FILE") is None:
                fail(where, "no DATABASE_URL_FILE (PostgreSQL from a Secret)")
    worker = deployments.get("scanvault-worker")
    if not worker:
        fail(name, "no worker Deployment")
        return
    where = f"{name}: Deployment/scanvault-worker"
    spec = worker["spec"]["template"]["spec"]
    if not spec.get("nodeSelector") or not spec.get("tolerations"):
        fail(where, "no node pool of its own (nodeSelector and tolerations)")
    for c in spec["containers"]:
        res = c.get("resources", {})
        if not res.get("requests") or quantities_equal(res.get("requests"), res.get("limits")):
            fail(where, "not Burstable (requests must be set and differ from limits)")
        shutdown = duration_seconds(env_of(c, "SHUTDOWN_TIMEOUT") or "30s")
        if spec.get("terminationGracePeriodSeconds", 30) <= shutdown:
            fail(where, "terminationGracePeriodSeconds is not longer than SHUTDOWN_TIMEOUT")
    hpas = [h for h in by_kind.get("HorizontalPodAutoscaler", []) if h["spec"]["scaleTargetRef"]["name"] == "scanvault-worker"]
    if len(hpas) != 1:
        fail(where, "no HorizontalPodAutoscaler")
        return
    hpa = hpas[0]["spec"]
    kinds = {(m["type"], (m.get("resource") or {}).get("name") or (m.get("external") or {}).get("metric", {}).get("name")) for m in hpa["metrics"]}
    if not {("Resource", "cpu"), ("External", "scanvault_jobs_queued")} <= kinds:
        fail(where, "the HPA does not scale on CPU and on scanvault_jobs_queued")
    for direction in ("scaleUp", "scaleDown"):
        if "stabilizationWindowSeconds" not in hpa.get("behavior", {}).get(direction, {}):
            fail(where, f"the HPA has no {direction} stabilisation window")


def exported_metrics(repo):
    table = open(os.path.join(repo, "docs/metrics.md")).read()
    return set(re.findall(r"^\| `(scanvault_[a-z0-9_]+)`", table, re.M))


def metric_names(text):
    names = set()
    for m in re.findall(r"\bscanvault_[a-z0-9_]+", text):
        names.add(re.sub(r"_(bucket|sum|count)$", "", m))
    return names


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rendered", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--rules-out", required=True)
    args = ap.parse_args()
    validators = {k: crd_validator(args.repo, k) for k in CRDS}
    rendered = sorted(glob.glob(os.path.join(args.rendered, "*.yaml")))
    overlays = [p for p in rendered if os.path.basename(p) in ("single-node.yaml", "scale-out.yaml")]
    if len(overlays) != 2:
        fail(args.rendered, "expected the single-node and scale-out renderings")
    rules = None
    for path in overlays:
        for o in check_overlay(path, args.repo, validators):
            if o["kind"] == "PrometheusRule":
                rules = o["spec"]
    if rules is None:
        fail("rendered", "no PrometheusRule")
    else:
        with open(args.rules_out, "w") as f:
            yaml.safe_dump(rules, f, sort_keys=False)

    exported = exported_metrics(args.repo)
    monitoring = os.path.join(args.repo, "deploy/kubernetes")
    for rel in ("base/prometheusrule.yaml", "base/grafana-dashboard.json", "monitoring/prometheus-adapter-rules.yaml"):
        text = open(os.path.join(monitoring, rel)).read()
        if rel.endswith(".json"):
            json.loads(text)
        for m in sorted(metric_names(text) - exported):
            fail(rel, f"{m} is not a metric the service exports (docs/metrics.md)")

    for e in errors:
        print(e, file=sys.stderr)
    print(f"check-k8s.py: {len(errors)} problem(s)", file=sys.stderr)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
