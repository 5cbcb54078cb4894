#!/usr/bin/env bash
# Offline checks of infra/terraform (no AWS account, no provider download):
#
#   1. every .tf file parses (python-hcl2 8.1.4, `hcl2_python` in scripts/lib.sh);
#   2. structural assertions over the parsed HCL: every variable has a
#      description and a type; every module has main.tf, variables.tf,
#      outputs.tf and versions.tf, with required_version and every provider
#      it uses pinned (~> or =); the example environment calls every module;
#      the GPU node groups scale from zero, are tainted and labelled with
#      their pool, and the training one is SPOT; launch templates require
#      IMDSv2 and encrypt the root volume; the helm_release values of the
#      llmops chart use only keys its values.yaml has;
#   3. checkov's Terraform policies, every finding fatal; a skip is either an
#      inline `#checkov:skip=CKV_…:<reason>` in the .tf files (each also listed
#      in infra/checks/skips.md under `## Terraform`) or a `- \`CKV_…\`: <reason>`
#      line in that section (passed as --skip-check);
#   4. `terraform fmt -check -recursive` when terraform is on PATH.
#
# `terraform validate` and `plan` need the providers (registry downloads) and
# `plan` AWS credentials: they belong on the operator's machine
# (infra/README.md), not here.
#
# About 15 seconds on 2 cores (checkov most of it) once the venv exists.
set -euo pipefail
cd -P "$(dirname "$0")/../.."
. scripts/lib.sh
py=$(infra_python)
hpy=$(hcl2_python)
bin=$(dirname "$py")
started=$SECONDS

log "terraform: parsing and structural checks"
"$hpy" - <<'PY'
import glob, os, re, sys

import hcl2
import yaml

ROOT = "infra/terraform"
failures = []


def fail(msg):
    failures.append(msg)


# python-hcl2 and checkov's fork of it (bc-python-hcl2) both install the
# `hcl2` module, and their shapes differ: the fork wraps every attribute in a
# one-element list, python-hcl2 8 keeps the quotes of strings. These helpers
# read both.
def unq(v):
    if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] == '"':
        return v[1:-1]
    return v


def attr(block, name, default=None):
    if not isinstance(block, dict):
        return default
    for k, v in block.items():
        if unq(k) == name:
            if isinstance(v, list) and len(v) == 1:
                v = v[0]
            return unq(v)
    return default


def blocks(block, name):
    """Nested blocks (lists of dicts) of that type."""
    for k, v in (block or {}).items():
        if unq(k) == name:
            if isinstance(v, dict):
                return [v]
            return [b for b in v if isinstance(b, dict)]
    return []


def labelled(doc, kind):
    """Top-level blocks with one label: {label: body}."""
    out = {}
    for b in doc.get(kind, []):
        for label, body in b.items():
            out[unq(label)] = body
    return out


def resources(doc, rtype=None):
    out = []
    for b in doc.get("resource", []):
        for t, named in b.items():
            for name, body in named.items():
                if rtype is None or unq(t) == rtype:
                    out.append((unq(t), unq(name), body))
    return out


files = sorted(
    f for f in glob.glob(f"{ROOT}/**/*.tf", recursive=True) if "/.terraform/" not in f
)
parsed = {}
for f in files:
    try:
        with open(f) as fh:
            parsed[f] = hcl2.load(fh)
    except Exception as e:  # a parse error names the file and position
        fail(f"{f}: does not parse: {e}")
version = getattr(hcl2, "__version__", "?")
print(f"parsed {len(parsed)} of {len(files)} .tf files (hcl2 {version})")
if len(parsed) != len(files):
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)


def docs_in(d):
    return {f: doc for f, doc in parsed.items() if os.path.dirname(f) == d}


# --- variables: description and type ---------------------------------------
nvars = 0
for f, doc in parsed.items():
    for name, body in labelled(doc, "variable").items():
        nvars += 1
        for field in ("description", "type"):
            if not attr(body, field):
                fail(f"{f}: variable {name} has no {field}")
print(f"{nvars} variables, each with a description and a type")

# --- modules: files and pinned providers -------------------------------------
PROVIDER_PREFIXES = {"aws": "aws_", "random": "random_", "tls": "tls_", "helm": "helm_", "kubernetes": "kubernetes_"}


def check_versions(d):
    vf = f"{d}/versions.tf"
    if vf not in parsed:
        fail(f"{d}: no versions.tf")
        return
    tf = (parsed[vf].get("terraform") or [{}])[0]
    rv = attr(tf, "required_version") or ""
    if not re.search(r">=\s*1\.([6-9]|[1-9][0-9])", rv):
        fail(f"{vf}: required_version must be >= 1.6 (is {rv!r})")
    declared = {}
    for rp in blocks(tf, "required_providers"):
        for pname, spec in rp.items():
            if pname.startswith("__"):
                continue
            spec = spec[0] if isinstance(spec, list) else spec
            declared[unq(pname)] = {unq(k): unq(v) for k, v in spec.items()}
    for pname, spec in declared.items():
        src, ver = spec.get("source", ""), spec.get("version", "")
        if not src.startswith("hashicorp/"):
            fail(f"{vf}: provider {pname} has source {src!r}")
        if not re.match(r"^(~>|=)\s*[0-9]", ver):
            fail(f"{vf}: provider {pname} is not pinned (version {ver!r}: use ~> or =)")
    aws = declared.get("aws", {}).get("version", "")
    if "aws" in declared and not re.match(r"^~>\s*5\.", aws):
        fail(f"{vf}: hashicorp/aws must be pinned to ~> 5.x (is {aws!r})")
    # every provider the directory's resources and data sources use is declared
    used = set()
    for doc in docs_in(d).values():
        for kind in ("resource", "data"):
            for b in doc.get(kind, []):
                for t in b:
                    for p, prefix in PROVIDER_PREFIXES.items():
                        if unq(t).startswith(prefix):
                            used.add(p)
    for p in sorted(used - set(declared)):
        fail(f"{vf}: provider {p} is used but not in required_providers")


module_dirs = sorted(d for d in glob.glob(f"{ROOT}/modules/*") if os.path.isdir(d))
for d in module_dirs:
    for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
        if not os.path.exists(f"{d}/{name}"):
            fail(f"{d}: no {name}")
    check_versions(d)
    outputs = {n: b for doc in docs_in(d).values() for n, b in labelled(doc, "output").items()}
    for n, b in outputs.items():
        if not attr(b, "description"):
            fail(f"{d}: output {n} has no description")
print(f"{len(module_dirs)} modules: {', '.join(os.path.basename(d) for d in module_dirs)}")

# --- the example environment calls every module -------------------------------
env = f"{ROOT}/envs/example"
check_versions(env)
called = set()
for doc in docs_in(env).values():
    for name, body in labelled(doc, "module").items():
        src = attr(body, "source") or ""
        m = re.match(r"^\.\./\.\./modules/([a-z0-9_-]+)$", src)
        if not m or not os.path.isdir(f"{ROOT}/modules/{m.group(1)}"):
            fail(f"{env}: module {name} has source {src!r}, not ../../modules/<existing module>")
        else:
            called.add(m.group(1))
missing = sorted({os.path.basename(d) for d in module_dirs} - called)
if missing:
    fail(f"{env} does not call the module(s) {', '.join(missing)}")
for extra in ("terraform.tfvars.example", "backend.hcl.example"):
    if not os.path.exists(f"{env}/{extra}"):
        fail(f"{env}: no {extra}")
backend = [b for doc in docs_in(env).values() for t in doc.get("terraform", []) for b in blocks(t, "backend")]
if not any("s3" in {unq(k) for k in b} for b in backend):
    fail(f"{env}: no backend \"s3\" block")

# --- EKS node groups --------------------------------------------------------------
eks = {f: doc for f, doc in parsed.items() if f.startswith(f"{ROOT}/modules/eks/")}
groups = [(n, b) for doc in eks.values() for _, n, b in resources(doc, "aws_eks_node_group")]
gpu = [(n, b) for n, b in groups if "NVIDIA" in str(attr(b, "ami_type", ""))]
if len(gpu) < 2:
    fail(f"modules/eks: expected a serving and a training GPU node group, found {[n for n, _ in gpu]}")
for n, b in gpu:
    sc = (blocks(b, "scaling_config") or [{}])[0]
    if str(attr(sc, "min_size")) != "0":
        fail(f"modules/eks: GPU node group {n} must have min_size 0 (has {attr(sc, 'min_size')!r})")
    taints = [(attr(t, "key"), attr(t, "value"), attr(t, "effect")) for t in blocks(b, "taint")]
    taint_ok = any(
        k is not None and ("nvidia.com/gpu" in str(k) or "gpu_taint.key" in str(k))
        and ("NO_SCHEDULE" in str(e) or "gpu_taint.effect" in str(e))
        for k, v, e in taints
    )
    if not taint_ok:
        fail(f"modules/eks: GPU node group {n} lacks the nvidia.com/gpu NoSchedule taint")
    labels = attr(b, "labels") or {}
    if not any(unq(k) == "llmops.dev/gpu-pool" for k in labels):
        fail(f"modules/eks: GPU node group {n} lacks the llmops.dev/gpu-pool label")
training = [(n, b) for n, b in gpu if "training" in n]
if not training:
    fail("modules/eks: no GPU node group named *training*")
for n, b in training:
    if attr(b, "capacity_type") != "SPOT":
        fail(f"modules/eks: training node group {n} must use SPOT capacity (has {attr(b, 'capacity_type')!r})")
for n, b in gpu:
    if "training" not in n and attr(b, "capacity_type") != "ON_DEMAND":
        fail(f"modules/eks: serving node group {n} should be ON_DEMAND")
for n, b in groups:
    if not blocks(b, "launch_template"):
        fail(f"modules/eks: node group {n} has no launch template")
for doc in eks.values():
    for _, n, b in resources(doc, "aws_launch_template"):
        md = (blocks(b, "metadata_options") or [{}])[0]
        if attr(md, "http_tokens") != "required":
            fail(f"modules/eks: launch template {n} does not require IMDSv2")
        for bd in blocks(b, "block_device_mappings"):
            for ebs in blocks(bd, "ebs"):
                if attr(ebs, "encrypted") is not True or not attr(ebs, "kms_key_id"):
                    fail(f"modules/eks: launch template {n} has an unencrypted or non-KMS volume")
print(f"EKS: {len(groups)} node groups, GPU ones {[n for n, _ in gpu]} from zero, {[n for n, _ in training]} on SPOT")

# --- the llmops chart's values ---------------------------------------------------------
chart = "infra/helm/llmops"
releases = [
    (n, b) for doc in docs_in(env).values() for _, n, b in resources(doc, "helm_release")
    if str(attr(b, "chart", "")).endswith("/helm/llmops")
]
if not releases:
    fail(f"{env}: no helm_release of the llmops chart")
elif not os.path.exists(f"{chart}/values.yaml"):
    fail(f"{chart}/values.yaml is missing: cannot check the helm_release values")
else:
    with open(f"{chart}/values.yaml") as fh:
        chart_values = yaml.safe_load(fh) or {}
    local_values = None
    for doc in docs_in(env).values():
        for b in doc.get("locals", []):
            v = attr(b, "llmops_values")
            if isinstance(v, dict):
                local_values = v
    if local_values is None:
        fail(f"{env}: no local.llmops_values (the llmops helm_release's values)")
    else:
        # Maps whose keys are the user's (labels, annotations), and the
        # subchart's values, which the chart passes on unchecked.
        FREE_FORM = {"nodeSelector", "annotations", "labels", "podAnnotations", "podLabels"}
        PASSED_ON = {"qdrant"}

        def compare(tf, ch, path):
            if not isinstance(ch, dict) or ch == {}:
                return
            name = path.rsplit(".", 1)[-1]
            if name in FREE_FORM or (path in PASSED_ON):
                return
            for k, v in tf.items():
                k = unq(k)
                if k.startswith("__"):
                    continue
                where = f"{path}.{k}" if path else k
                if k not in ch:
                    fail(f"{env}: helm value {where} is not in {chart}/values.yaml")
                elif isinstance(v, dict) and isinstance(ch[k], dict):
                    compare(v, ch[k], where)
        compare(local_values, chart_values, "")
        print(f"helm_release {releases[0][0]}: every value key is one of {chart}/values.yaml's")

if failures:
    print("\n".join(f"FAIL {m}" for m in failures), file=sys.stderr)
    sys.exit(1)
PY

log "terraform: checkov"
"$py" - "$bin/checkov" <<'PY'
import json, re, subprocess, sys

checkov = sys.argv[1]
ROOT = "infra/terraform"
SKIPS = "infra/checks/skips.md"
failures = []

# The `## Terraform` section of skips.md: `- \`CKV_…\`: reason` lines are
# global skips; the rest of the section documents the inline ones.
section = ""
try:
    text = open(SKIPS).read()
    m = re.search(r"^## Terraform[ \t]*\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    section = m.group(1) if m else ""
    if not m:
        failures.append(f"{SKIPS} has no '## Terraform' section")
except FileNotFoundError:
    failures.append(f"{SKIPS} is missing")
global_skips = []
for line in section.splitlines():
    m = re.match(r"^\s*[-*]\s+`(CKV2?_[A-Z0-9_]+)`\s*:?\s*(.*)$", line)
    if m:
        if len(m.group(2).strip()) < 10:
            failures.append(f"{SKIPS}: the skip {m.group(1)} has no reason")
        else:
            global_skips.append(m.group(1))

# Inline skips: each with a reason, each documented in the section.
import glob
inline = []
for f in sorted(glob.glob(f"{ROOT}/**/*.tf", recursive=True)):
    for no, line in enumerate(open(f), 1):
        if "checkov:skip" not in line:
            continue
        m = re.search(r"#\s*checkov:skip=(CKV2?_[A-Z0-9_]+)(?::(.*))?$", line.rstrip())
        if not m or len((m.group(2) or "").strip()) < 10:
            failures.append(f"{f}:{no}: a checkov skip needs `#checkov:skip=CKV_…:<reason>`")
            continue
        inline.append((f, no, m.group(1)))
        if m.group(1) not in section:
            failures.append(f"{f}:{no}: {m.group(1)} is skipped inline but not listed in {SKIPS} under ## Terraform")

cmd = [checkov, "-d", ROOT, "--framework", "terraform", "--download-external-modules", "false",
       "--skip-download", "-o", "json"]
if global_skips:
    cmd += ["--skip-check", ",".join(global_skips)]
proc = subprocess.run(cmd, capture_output=True, text=True)
try:
    out = json.loads(proc.stdout)
except json.JSONDecodeError:
    sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
    failures.append(f"checkov exited {proc.returncode} without a JSON report")
    out = None
if out is not None:
    if isinstance(out, list):
        out = next((r for r in out if r.get("check_type") == "terraform"), out[0] if out else {})
    summary = out.get("summary", {})
    results = out.get("results", {})
    for c in results.get("failed_checks", []):
        lines = c.get("file_line_range", [])
        failures.append(f"checkov {c['check_id']} {c['resource']} ({c['file_path']}:{'-'.join(map(str, lines))}): {c['check_name']}")
    if summary.get("parsing_errors"):
        failures.append(f"checkov could not parse {summary['parsing_errors']} file(s): {results.get('parsing_errors')}")
    if summary.get("resource_count", 0) == 0:
        failures.append("checkov scanned no resources")
    print(f"checkov {summary.get('checkov_version')}: {summary.get('resource_count')} resources, "
          f"{summary.get('passed')} passed, {summary.get('failed')} failed, {summary.get('skipped')} skipped "
          f"({len(inline)} inline skip comments, {len(global_skips)} --skip-check IDs)")
    for c in results.get("skipped_checks", []):
        reason = (c.get("check_result") or {}).get("suppress_comment", "")
        print(f"  skipped {c['check_id']} {c['resource']}: {reason}")

if failures:
    print("\n".join(f"FAIL {m}" for m in failures), file=sys.stderr)
    sys.exit(1)
PY

if command -v terraform >/dev/null 2>&1; then
  log "terraform: fmt -check"
  # fmt reads no provider and no CLI configuration (no ~/.terraformrc needed).
  export TF_CLI_CONFIG_FILE=/dev/null
  terraform fmt -check -recursive -diff infra/terraform
  echo "terraform fmt: clean ($(terraform version | head -n 1))"
else
  echo "terraform fmt: skipped (terraform is not on PATH)"
fi
echo "terraform checks passed in $((SECONDS - started)) s (validate and plan need provider downloads: run them on the operator's machine)"
