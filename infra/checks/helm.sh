#!/usr/bin/env bash
# Offline checks of the Helm chart infra/helm/llmops (no cluster, no helm
# binary, no network beyond the one-time PyPI install of infra_python):
#
#   1. helm lint (Helm 4's own linter through helm-python-sdk), Kubernetes 1.31;
#   2. the Qdrant dependency: declared, absent from charts/ (it cannot be
#      downloaded here), and enabling it without `helm dependency build`
#      must fail loudly rather than render without Qdrant;
#   3. values.schema.json: every value set of infra/helm/llmops/ci/ passes,
#      ci/invalid-values.yaml and a list of single broken values fail;
#   4. render every value set (default, single, full) offline and validate
#      every object against Kubernetes' own schemas (kubernetes-validate,
#      strict: unknown fields refused) for 1.31 and the newest it ships;
#      CRD kinds (ServiceMonitor) have no schema there and get a structural
#      check instead;
#   5. structural assertions on the rendered objects (security contexts,
#      resources, probes, hooks, NetworkPolicies, split-mode wiring, …);
#   6. checkov on the rendered manifests (--framework kubernetes) with the
#      skips justified in infra/checks/skips.md, and checkov's secrets scan
#      of the chart's sources.
#
# Exits non-zero on any finding. HELM_CHECK_OUT=DIR keeps the rendered
# manifests in DIR (default: a temporary directory, removed).
set -euo pipefail
cd -P "$(dirname "$0")/../.."
. scripts/lib.sh

py=$(infra_python)
bin=$(dirname "$py")
chart=infra/helm/llmops

if [ -n "${HELM_CHECK_OUT:-}" ]; then
  out=$HELM_CHECK_OUT
  rm -rf "$out"
  mkdir -p "$out"
else
  out=$(mktemp -d /tmp/llmops-helm-check.XXXXXX)
  trap 'rm -rf "$out"' EXIT
fi

start=$(date +%s)

# Steps 1 to 5: one Python run (the chart is loaded once).
"$py" - "$chart" "$out" <<'PY'
import copy
import json
import re
import sys
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import yaml

chart_dir, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
RELEASE, NAMESPACE = "llmops", "llmops"
KUBE_VERSIONS = ["1.31.0", kubernetes_validate.utils.latest_version()]
SERVICES = ["registry", "serving", "billing", "training", "rag", "monitoring"]
CRD_GROUPS = {"monitoring.coreos.com"}
SECRETISH = re.compile(r"(_SECRET|_TOKEN|PASSWORD|_API_KEY|DATABASE_URL|REDIS_URL|ACCESS_KEY_ID|SECRET_ACCESS_KEY)$")
# Variables whose names look secret but hold the *name* of a Secret.
SECRET_NAMES = {"LLMOPS_TRAINING_KUBE_ARTIFACTS_SECRET"}

helm.disable_logging()
findings = []


def fail(msg):
    findings.append(msg)


def summary(check, ok, detail):
    print(f"[helm] {check}: {'ok' if ok else 'FAILED'} ({detail})", flush=True)


def load(name):
    return yaml.safe_load((chart_dir / "ci" / name).read_text()) or {}


def set_path(values, dotted, value):
    values = copy.deepcopy(values)
    node = values
    keys = dotted.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return values


chart = helm.Chart.load(chart_dir)

# 1. lint ------------------------------------------------------------------
base = load("default-values.yaml")
report = helm.lint(str(chart_dir), base, kube_version="v1.31.0")
allowed = {"icon is recommended", "chart directory is missing these dependencies: qdrant"}
bad = [m for m in report["messages"] if m["severity"] >= 2 and m["error"] not in allowed]
bad += [{"error": e} for e in report["errors"] if e not in allowed]
for m in bad:
    fail(f"lint: {m.get('path', '')}: {m['error']}")
summary("lint", not bad, f"{len(report['messages'])} messages, {len(bad)} not allowed")

# 2. the Qdrant dependency -------------------------------------------------
deps = helm.dependency_list(str(chart_dir))
dep_ok = [d["name"] for d in deps] == ["qdrant"] and deps[0]["status"] in ("missing", "ok")
if not dep_ok:
    fail(f"dependencies: unexpected {deps}")
if deps and deps[0]["status"] == "missing":
    try:
        chart.render(set_path(base, "qdrant.enabled", True), name=RELEASE, namespace=NAMESPACE, is_install=True)
        fail("dependencies: qdrant.enabled without charts/qdrant rendered (it must fail)")
        dep_ok = False
    except helm.HelmError as e:
        if "helm dependency build" not in str(e):
            fail(f"dependencies: qdrant.enabled failed for another reason: {e}")
            dep_ok = False
summary("qdrant dependency", dep_ok, f"qdrant {deps[0]['version'] if deps else '?'}: {deps[0]['status'] if deps else 'undeclared'}; enabling it without `helm dependency build` is refused")

# 3. values.schema.json ----------------------------------------------------
try:
    import jsonschema
    jsonschema.Draft7Validator.check_schema(json.loads((chart_dir / "values.schema.json").read_text()))
except Exception as e:  # a schema Helm would misread
    fail(f"schema: values.schema.json is not a valid draft-07 JSON Schema: {e}")
value_sets = {"default": load("default-values.yaml"), "single": load("single-values.yaml"), "full": load("full-values.yaml")}
for name, values in value_sets.items():
    try:
        chart.validate_schema(chart.merge_values(values))
    except helm.HelmError as e:
        fail(f"schema: ci/{name}-values.yaml refused: {e}")
negatives = [
    ("ci/invalid-values.yaml", load("invalid-values.yaml"), ["/mode", "/gateway/replicas", "/securityContext/runAsNonRoot", "/artifacts/url", "/config/extraEnv/0", "/triton/gpu/count"]),
    ("mode=both", set_path(base, "mode", "both"), ["/mode"]),
    ("gateway.replicas=0", set_path(base, "gateway.replicas", 0), ["/gateway/replicas"]),
    ("image.pullPolicy=Sometimes", set_path(base, "image.pullPolicy", "Sometimes"), ["/image/pullPolicy"]),
    ("image.digest=latest", set_path(base, "image.digest", "latest"), ["/image/digest"]),
    ("secrets.existingSecret=''", set_path(base, "secrets.existingSecret", ""), ["/secrets/existingSecret"]),
    ("securityContext.readOnlyRootFilesystem=false", set_path(base, "securityContext.readOnlyRootFilesystem", False), ["/securityContext/readOnlyRootFilesystem"]),
    ("services.rag memory limit=lots", set_path(base, "services.rag.resources.limits.memory", "lots"), ["/services/rag/resources/limits/memory"]),
    ("triton.modelRepository.source=nfs", set_path(base, "triton.modelRepository.source", "nfs"), ["/triton/modelRepository/source"]),
    ("gpuWorker.enabled without pool", set_path(base, "gpuWorker.enabled", True), ["/gpuWorker"]),
    ("unknown top-level key", set_path(base, "gatway", {"replicas": 2}), ["gatway"]),
    ("literal secret in extraEnv", set_path(base, "config.extraEnv", [{"name": "LLMOPS_OPERATOR_TOKEN", "value": "x" * 40}]), ["/config/extraEnv/0"]),
]
schema_ok = True
for label, values, expected in negatives:
    try:
        chart.validate_schema(chart.merge_values(values))
        fail(f"schema: {label} was accepted (must be refused)")
        schema_ok = False
    except helm.HelmError as e:
        missing = [x for x in expected if x not in str(e)]
        if missing:
            fail(f"schema: {label} refused, but not for {missing}: {e}")
            schema_ok = False
# Refusals of the templates (what a schema cannot say).
template_negatives = [
    ("no artifacts.url", set_path(base, "artifacts.url", ""), "artifacts.url"),
    ("no Qdrant URL", set_path(base, "externalQdrant.url", ""), "externalQdrant.url is required"),
    ("GPU worker with a local artifact store", set_path(set_path(set_path(set_path(base, "gpuWorker.enabled", True), "gpuWorker.pool", "p"), "gpuWorker.trainingImage", "i:1"), "artifacts.url", ""), "artifacts.url"),
    ("Triton from a PVC without a claim", set_path(base, "triton.modelRepository.source", "pvc"), "claimName"),
]
for label, values, expected in template_negatives:
    try:
        chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
        fail(f"templates: {label} rendered (must be refused)")
        schema_ok = False
    except helm.HelmError as e:
        if expected not in str(e):
            fail(f"templates: {label} refused for another reason: {e}")
            schema_ok = False
summary("values schema", schema_ok and not any(f.startswith("schema: ") for f in findings),
        f"{len(value_sets)} value sets pass; {len(negatives)} broken value sets and {len(template_negatives)} template refusals fail as they must")

# 4. render and validate -----------------------------------------------------
rendered = {}
for name, values in value_sets.items():
    try:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    except helm.HelmError as e:
        fail(f"render {name}: {e}")
        continue
    objs = []
    target = out_dir / name
    target.mkdir(parents=True, exist_ok=True)
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            if "{{" in text or not text.strip():
                fail(f"render {name}: NOTES.txt did not render")
            continue
        docs = [d for d in yaml.safe_load_all(text) if d]
        if docs:
            (target / Path(template).name).write_text(text)
        for d in docs:
            objs.append((template, d))
    rendered[name] = objs

validated = skipped_crds = 0
for name, objs in rendered.items():
    for template, obj in objs:
        group = obj.get("apiVersion", "").split("/")[0] if "/" in obj.get("apiVersion", "") else ""
        if group in CRD_GROUPS:
            skipped_crds += 1
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                fail(f"kubernetes-validate {version} {name}: {obj['kind']}/{obj['metadata']['name']} ({template}): {e.message} at {list(e.path)}")
            except kubernetes_validate.SchemaNotFoundError:
                fail(f"kubernetes-validate {version} {name}: no schema for {obj['apiVersion']} {obj['kind']}")
        validated += 1
total = sum(len(o) for o in rendered.values())
summary("render + kubernetes-validate",
        not any(f.startswith(("render", "kubernetes-validate")) for f in findings),
        f"{', '.join(f'{n}: {len(o)} objects' for n, o in rendered.items())}; {validated} validated strictly against "
        f"Kubernetes {' and '.join(KUBE_VERSIONS)}; {skipped_crds} CRD objects (ServiceMonitor) not in those schemas, checked structurally below")

# 5. structural assertions -------------------------------------------------


def component(obj):
    return obj["metadata"].get("labels", {}).get("app.kubernetes.io/component", "")


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def check_set(name, values, objs):
    merged = chart.merge_values(values)
    split = merged["mode"] == "split"
    by_kind = {}
    for _, o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    names = {(o["kind"], o["metadata"]["name"]) for _, o in objs}
    where = f"{name}"

    if "Secret" in by_kind:
        fail(f"{where}: the chart rendered a Secret (every secret must come from an existing one)")

    workloads = by_kind.get("Deployment", []) + by_kind.get("Job", [])
    for w in workloads:
        comp = component(w)
        wname = f"{where}: {w['kind']}/{w['metadata']['name']}"
        pod = w["spec"]["template"]["spec"]
        psc = pod.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True:
            fail(f"{wname}: pod securityContext.runAsNonRoot is not true")
        if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            fail(f"{wname}: pod seccompProfile is not RuntimeDefault")
        automount = pod.get("automountServiceAccountToken")
        if comp == "gpu-worker":
            if automount is not True:
                fail(f"{wname}: the GPU worker needs its ServiceAccount token (it calls the Kubernetes API)")
        elif automount is not False:
            fail(f"{wname}: automountServiceAccountToken must be false")
        mounts_by_container = {}
        for c in pod.get("initContainers", []) + pod["containers"]:
            cname = f"{wname} container {c['name']}"
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(res.get(part, {})):
                    fail(f"{cname}: resources.{part} lacks cpu or memory")
            sc = c.get("securityContext", {})
            if sc.get("readOnlyRootFilesystem") is not True:
                fail(f"{cname}: readOnlyRootFilesystem is not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                fail(f"{cname}: allowPrivilegeEscalation is not false")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                fail(f"{cname}: capabilities do not drop ALL")
            if sc.get("runAsNonRoot") is not True or not sc.get("runAsUser"):
                fail(f"{cname}: not a numeric non-root user")
            if c.get("imagePullPolicy") != "Always":
                fail(f"{cname}: imagePullPolicy is not Always")
            image = c["image"]
            tag = image.split("@")[0].rsplit("/", 1)[-1]
            if ":" not in tag or tag.endswith(":latest"):
                fail(f"{cname}: image {image} is not pinned by tag")
            for e in c.get("env", []):
                if SECRETISH.search(e["name"]) and "value" in e and e["name"] not in SECRET_NAMES:
                    fail(f"{cname}: {e['name']} is a literal value (secrets come from Secrets)")
            mounts_by_container[c["name"]] = {m["mountPath"] for m in c.get("volumeMounts", [])}
        main = pod["containers"][0]
        if comp == "triton":
            if "/tmp" not in mounts_by_container[main["name"]] or "/dev/shm" not in mounts_by_container[main["name"]]:
                fail(f"{wname}: Triton needs /tmp and /dev/shm emptyDirs")
        elif not {"/var/lib/llmops", "/tmp"} <= mounts_by_container[main["name"]]:
            fail(f"{wname}: the data directory and /tmp must be writable emptyDirs")
        if w["kind"] == "Deployment":
            if comp in ("worker", "gpu-worker"):
                ann = w["metadata"].get("annotations", {})
                if not any(v.startswith("CKV_K8S_8=") for v in ann.values()):
                    fail(f"{wname}: a worker without probes must say why (checkov skip annotation)")
            else:
                for probe in ("livenessProbe", "readinessProbe"):
                    if probe not in main:
                        fail(f"{wname}: no {probe}")
        if comp not in ("triton", "migrate"):
            env = env_of(main)
            if env.get("LLMOPS_AUTO_MIGRATE", {}).get("value") != "false":
                fail(f"{wname}: LLMOPS_AUTO_MIGRATE must be false (migrations are the hook Job's)")
            for secret_var in ("LLMOPS_DATABASE_URL", "LLMOPS_REDIS_URL", "LLMOPS_JWT_SECRET", "LLMOPS_OPERATOR_TOKEN"):
                if "secretKeyRef" not in env.get(secret_var, {}).get("valueFrom", {}):
                    fail(f"{wname}: {secret_var} is not from a Secret")

    deployments = {component(d): d for d in by_kind.get("Deployment", [])}
    services = {o["metadata"]["name"] for o in by_kind.get("Service", [])}
    policies = {o["metadata"]["name"]: o for o in by_kind.get("NetworkPolicy", [])}
    pdbs = {o["metadata"]["name"] for o in by_kind.get("PodDisruptionBudget", [])}
    hpas = {o["metadata"]["name"]: o for o in by_kind.get("HorizontalPodAutoscaler", [])}
    prefix = f"{RELEASE}"

    # Services select the pods of their Deployment.
    for s in by_kind.get("Service", []):
        sel = s["spec"]["selector"]
        if not any(sel.items() <= d["spec"]["template"]["metadata"]["labels"].items() for d in by_kind.get("Deployment", [])):
            fail(f"{where}: Service/{s['metadata']['name']} selects no pods of the chart")

    # The migration hook.
    jobs = [j for j in by_kind.get("Job", []) if component(j) == "migrate"]
    if merged["migrations"]["enabled"]:
        if len(jobs) != 1:
            fail(f"{where}: expected one migration Job, found {len(jobs)}")
        for j in jobs:
            ann = j["metadata"].get("annotations", {})
            hooks = set(ann.get("helm.sh/hook", "").split(","))
            if not {"pre-install", "pre-upgrade"} <= hooks:
                fail(f"{where}: the migration Job's hooks are {hooks}, not pre-install,pre-upgrade")
            if "helm.sh/hook-weight" not in ann or "helm.sh/hook-delete-policy" not in ann:
                fail(f"{where}: the migration Job lacks hook-weight or hook-delete-policy")
            if j["spec"]["template"]["spec"]["containers"][0].get("args") != ["migrate"]:
                fail(f"{where}: the migration Job does not run `llmops migrate`")

    edge = "gateway" if split else "server"
    expected_components = [edge] + ([s for s in SERVICES if merged["services"][s]["enabled"]] if split else [])
    for comp in expected_components:
        d = deployments.get(comp)
        if d is None:
            fail(f"{where}: no Deployment for {comp}")
            continue
        main = d["spec"]["template"]["spec"]["containers"][0]
        want = ["serve", "--services", comp if split else "all"]
        if main.get("args") != want:
            fail(f"{where}: {comp} runs {main.get('args')}, not {want}")
        full = f"{prefix}-{comp}"
        if full not in services:
            fail(f"{where}: no Service {full}")
        if merged["networkPolicy"]["enabled"] and full not in policies:
            fail(f"{where}: no NetworkPolicy {full}")
        spec = merged["gateway"] if comp == "gateway" else merged["single"] if comp == "server" else merged["services"][comp]
        if spec["pdb"]["enabled"] and full not in pdbs:
            fail(f"{where}: no PodDisruptionBudget {full}")
        if spec["autoscaling"]["enabled"]:
            hpa = hpas.get(full)
            if hpa is None:
                fail(f"{where}: no HorizontalPodAutoscaler {full}")
            else:
                if "replicas" in d["spec"]:
                    fail(f"{where}: {full} sets replicas while an HPA scales it")
                kinds = {(m["type"], (m.get("resource") or m.get("pods", {}).get("metric", {})).get("name")) for m in hpa["spec"]["metrics"]}
                if ("Resource", "cpu") not in kinds:
                    fail(f"{where}: the HPA of {full} has no CPU metric")
                rps = spec["autoscaling"].get("requestsPerSecond", {})
                if rps.get("enabled") and ("Pods", rps["metricName"]) not in kinds:
                    fail(f"{where}: the HPA of {full} lacks the Pods metric {rps['metricName']}")
        env = env_of(main)
        slots = env.get("LLMOPS_TRAINING_CPU_SLOTS", {}).get("value")
        want_slots = str(spec.get("cpuSlots", 0))
        if slots != want_slots:
            fail(f"{where}: {comp} has LLMOPS_TRAINING_CPU_SLOTS={slots}, expected {want_slots}")
        if int(want_slots) > 0 and not main["image"].split("@")[0].endswith("-trainer"):
            fail(f"{where}: {comp} runs CPU slots without the trainer image ({main['image']})")
        if split:
            if "secretKeyRef" not in env.get("LLMOPS_INTERNAL_SECRET", {}).get("valueFrom", {}):
                fail(f"{where}: {comp} lacks LLMOPS_INTERNAL_SECRET from the Secret")
            urls = env.get("LLMOPS_SERVICE_URLS", {}).get("value", "")
            pairs = dict(re.findall(r'(\w+)="http://([^:"]+):8080"', urls))
            enabled = {s for s in SERVICES if merged["services"][s]["enabled"]}
            if set(pairs) != enabled:
                fail(f"{where}: {comp}'s LLMOPS_SERVICE_URLS names {sorted(pairs)}, not {sorted(enabled)}")
            for svc, host in pairs.items():
                if host not in services:
                    fail(f"{where}: LLMOPS_SERVICE_URLS points {svc} at {host}, which is no Service")
        elif "LLMOPS_INTERNAL_SECRET" in env:
            fail(f"{where}: the all-in-one does not need LLMOPS_INTERNAL_SECRET")

    # NetworkPolicies: a default deny, and services reachable only from
    # the chart's llmops components.
    if merged["networkPolicy"]["enabled"]:
        deny = policies.get(f"{prefix}-default-deny")
        if not deny or set(deny["spec"]["policyTypes"]) != {"Ingress", "Egress"} or deny["spec"].get("ingress") or deny["spec"].get("egress"):
            fail(f"{where}: no default-deny NetworkPolicy for ingress and egress")
        if split:
            for svc in SERVICES:
                p = policies.get(f"{prefix}-{svc}")
                if not merged["services"][svc]["enabled"]:
                    continue
                for rule in p["spec"]["ingress"]:
                    for peer in rule.get("from", [{}]):
                        if peer == {}:
                            fail(f"{where}: NetworkPolicy {prefix}-{svc} admits anyone")
                first = p["spec"]["ingress"][0]["from"][0]["podSelector"]
                callers = first["matchExpressions"][0]["values"]
                if "gateway" not in callers or svc in callers:
                    fail(f"{where}: NetworkPolicy {prefix}-{svc} callers {callers}")
        egress = policies.get(f"{prefix}-egress")
        ports = {pp["port"] for r in egress["spec"]["egress"] for pp in r.get("ports", [])} if egress else set()
        for port, what in ((53, "DNS"), (merged["postgresql"]["port"], "PostgreSQL"), (merged["redis"]["port"], "Redis"),
                           (merged["externalQdrant"]["port"], "Qdrant"), (merged["externalTriton"]["port"], "Triton")):
            if port not in ports:
                fail(f"{where}: the egress policy does not open {what} ({port})")

    # Triton.
    triton = deployments.get("triton")
    if merged["triton"]["enabled"]:
        if triton is None:
            fail(f"{where}: no Triton Deployment")
        else:
            pod = triton["spec"]["template"]["spec"]
            c = pod["containers"][0]
            gpu = merged["triton"]["gpu"]
            if gpu["count"] > 0 and str(c["resources"]["limits"].get(gpu["resourceName"])) != str(gpu["count"]):
                fail(f"{where}: Triton lacks the {gpu['resourceName']} limit")
            if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/v2/health/ready":
                fail(f"{where}: Triton's readiness is not /v2/health/ready")
            if {p["containerPort"] for p in c["ports"]} != {8000, 8001, 8002}:
                fail(f"{where}: Triton's ports are not 8000/8001/8002")
            if merged["triton"]["nodeSelector"] and pod.get("nodeSelector") != merged["triton"]["nodeSelector"]:
                fail(f"{where}: Triton's nodeSelector is not the values'")
            if merged["triton"]["modelRepository"]["source"] == "objectStore" and not pod.get("initContainers"):
                fail(f"{where}: Triton's objectStore repository has no sync init container")
    elif triton is not None:
        fail(f"{where}: Triton rendered while disabled")

    # GPU worker RBAC.
    if merged["gpuWorker"]["enabled"]:
        ns = merged["gpuWorker"]["namespace"] or NAMESPACE
        role = next((r for r in by_kind.get("Role", []) if r["metadata"]["name"] == f"{prefix}-gpu-worker"), None)
        binding = next((r for r in by_kind.get("RoleBinding", []) if r["metadata"]["name"] == f"{prefix}-gpu-worker"), None)
        if not role or role["metadata"]["namespace"] != ns or not binding or binding["metadata"]["namespace"] != ns:
            fail(f"{where}: the GPU worker's Role/RoleBinding are not in {ns}")
        else:
            granted = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
            for need in (("batch", "jobs"), ("", "pods"), ("", "pods/log"), ("", "configmaps"), ("", "services")):
                if need not in granted:
                    fail(f"{where}: the GPU worker's Role lacks {need}")
            if any("*" in rule["verbs"] or "*" in rule["resources"] for rule in role["rules"]):
                fail(f"{where}: the GPU worker's Role uses wildcards")
        gw = deployments.get("gpu-worker")
        args = gw["spec"]["template"]["spec"]["containers"][0]["args"] if gw else []
        if args[:3] != ["worker", "--gpu-type", merged["gpuWorker"]["gpuType"]] or "--pool" not in args:
            fail(f"{where}: the GPU worker runs {args}")
    if merged["worker"]["enabled"] and "worker" not in deployments:
        fail(f"{where}: no CPU worker Deployment")

    # CRDs, checked structurally (kubernetes-validate has no schema for them).
    sms = by_kind.get("ServiceMonitor", [])
    if merged["serviceMonitor"]["enabled"]:
        if not sms:
            fail(f"{where}: serviceMonitor.enabled but no ServiceMonitor")
        for sm in sms:
            spec = sm.get("spec", {})
            if sm.get("apiVersion") != "monitoring.coreos.com/v1" or not spec.get("selector", {}).get("matchLabels") \
                    or not all(e.get("port") and e.get("path") == "/metrics" for e in spec.get("endpoints", [])) or not spec.get("endpoints"):
                fail(f"{where}: ServiceMonitor/{sm['metadata']['name']} is malformed")
            sel = spec["selector"]["matchLabels"]
            if not any(sel.items() <= s["metadata"]["labels"].items() for s in by_kind.get("Service", [])):
                fail(f"{where}: ServiceMonitor/{sm['metadata']['name']} selects no Service")
    if merged["gateway"]["ingress"]["enabled"]:
        ing = by_kind.get("Ingress", [])
        backend = ing[0]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] if ing else None
        if backend != f"{prefix}-{edge}":
            fail(f"{where}: the Ingress does not lead to the {edge}")
        # /metrics, /healthz and /readyz stay inside the cluster.
        for path in (p["path"] for i in ing for r in i["spec"]["rules"] for p in r["http"]["paths"]):
            if path == "/" or path.startswith(("/metrics", "/healthz", "/readyz")):
                fail(f"{where}: the Ingress exposes {path}")


before = len(findings)
for name, objs in rendered.items():
    check_set(name, value_sets[name], objs)
summary("structure", len(findings) == before,
        f"security contexts, resources, probes, images, secrets by reference, hooks, split wiring, NetworkPolicies, "
        f"Triton, GPU RBAC, ServiceMonitor over {total} objects; {len(findings) - before} findings")

for f in findings:
    print(f"[helm]   finding: {f}", file=sys.stderr)
sys.exit(1 if findings else 0)
PY

# 6. checkov -----------------------------------------------------------------
# Skips (reasons in infra/checks/skips.md, "Helm"):
#   CKV_K8S_35  secrets as environment variables: llmops reads its whole
#               configuration, secrets included, from LLMOPS_* variables.
#   CKV_K8S_43  image digests: a release-time value (image.digest); the
#               `full` value set sets every digest and is checked without
#               this skip.
# The workers' CKV_K8S_8/9 (no probes without HTTP) and the GPU worker's
# CKV_K8S_38 (it needs its token) are skipped per resource, by annotation.
checkov_run() {
  local label=$1 skip=$2; shift 2
  local dirs=() d
  for d in "$@"; do dirs+=(-d "$out/$d"); done
  local log="$out/checkov-$label.log"
  if "$bin/checkov" "${dirs[@]}" --framework kubernetes --skip-download --compact --quiet \
       --skip-check "$skip" >"$log" 2>&1; then
    printf '[helm] checkov kubernetes (%s): ok (%s; skipped: %s)\n' "$label" \
      "$(grep -m1 -o 'Passed checks: [0-9]*, Failed checks: [0-9]*, Skipped checks: [0-9]*' "$log" || echo 'nothing to report')" "$skip"
  else
    cat "$log" >&2
    printf '[helm] checkov kubernetes (%s): FAILED\n' "$label"
    return 1
  fi
}
status=0
checkov_run "default+single" CKV_K8S_35,CKV_K8S_43 default single || status=1
checkov_run "full" CKV_K8S_35 full || status=1

# Secrets committed to the chart's sources (values, templates, value sets).
# The names of Secrets and of their keys carry inline suppressions.
if "$bin/checkov" -d "$chart" --framework secrets --skip-download --compact --quiet >"$out/checkov-secrets.log" 2>&1; then
  echo "[helm] checkov secrets (chart sources): ok (no literal secret)"
else
  cat "$out/checkov-secrets.log" >&2
  echo "[helm] checkov secrets (chart sources): FAILED"
  status=1
fi

echo "[helm] done in $(( $(date +%s) - start ))s"
exit "$status"
