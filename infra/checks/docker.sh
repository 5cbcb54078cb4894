#!/usr/bin/env bash
# Offline checks of infra/docker/ (no Docker daemon, no registry, no network
# beyond the one-time PyPI install of infra_python):
#
#   1. hadolint on every Dockerfile (config: infra/docker/.hadolint.yaml,
#      any finding fails, the one ignore is justified there and in
#      infra/checks/skips.md);
#   2. checkov on the Dockerfiles (--framework dockerfile) and a secrets
#      scan of the folder (compose.yaml included); no skips;
#   3. the image build's inputs, since the image cannot be built here:
#      every workspace member and explicit bench/test target of Cargo.toml
#      has its stub in the dependency stage, every file the sources embed
#      from outside the crates (include_str!) is copied, the build command
#      is the scripts' own, and every file COPY reads from the context
#      passes the BuildKit .dockerignore (Dockerfile.dockerignore), which
#      keeps target/, data/ and .git out;
#   4. the runtime stages' contract (numeric non-root USER, HEALTHCHECK,
#      ENTRYPOINT/CMD, EXPOSE, LLMOPS_LISTEN/LLMOPS_DATA_DIR);
#   5. compose.yaml: every image pinned, every secret a required `${VAR:?}`
#      substitution (no literal), llmops containers hardened and wired
#      (migrate first, AUTO_MIGRATE off, split-mode URLs naming real
#      services), only 127.0.0.1 ports.
#
# Exits non-zero on any finding.
set -euo pipefail
cd -P "$(dirname "$0")/../.."
. scripts/lib.sh

py=$(infra_python)
bin=$(dirname "$py")
start=$(date +%s)
status=0
work=$(mktemp -d /tmp/llmops-docker-check.XXXXXX)
trap 'rm -rf "$work"' EXIT

dockerfiles=(infra/docker/Dockerfile infra/docker/Dockerfile.triton)

# 1. hadolint ---------------------------------------------------------------
if "$bin/hadolint" --config infra/docker/.hadolint.yaml --no-color "${dockerfiles[@]}" >"$work/hadolint.log" 2>&1; then
  echo "[docker] hadolint: ok (${#dockerfiles[@]} Dockerfiles; ignored: DL3008, see infra/docker/.hadolint.yaml)"
else
  cat "$work/hadolint.log" >&2
  echo "[docker] hadolint: FAILED"
  status=1
fi

# 2. checkov ----------------------------------------------------------------
if "$bin/checkov" -d infra/docker --framework dockerfile secrets --skip-download --compact --quiet \
     >"$work/checkov.log" 2>&1; then
  echo "[docker] checkov dockerfile+secrets: ok ($(grep -o 'Passed checks: [0-9]*, Failed checks: [0-9]*, Skipped checks: [0-9]*' "$work/checkov.log" | head -n1); no skips)"
else
  cat "$work/checkov.log" >&2
  echo "[docker] checkov dockerfile+secrets: FAILED"
  status=1
fi

# 3 to 5. -------------------------------------------------------------------
"$py" - <<'PY' || status=1
import os
import re
import shlex
import sys
import tomllib
from pathlib import Path

import yaml

findings = []


def fail(msg):
    findings.append(msg)


def summary(check, before, detail):
    ok = len(findings) == before
    print(f"[docker] {check}: {'ok' if ok else 'FAILED'} ({detail})", flush=True)


# A Dockerfile as a list of (instruction, arguments, stage), continuation
# lines joined, comments dropped.
def parse_dockerfile(path):
    text = Path(path).read_text()
    logical, buf = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        logical.append(buf + stripped)
        buf = ""
    out, stage = [], None
    for ins in logical:
        word, _, rest = ins.partition(" ")
        word = word.upper()
        if word == "FROM":
            m = re.search(r"\bAS\s+(\S+)", rest, re.I)
            stage = m.group(1) if m else f"#{len(out)}"
        out.append((word, rest.strip(), stage))
    return out


# BuildKit's .dockerignore semantics (moby/patternmatcher): patterns in
# order, the last match wins, `!` re-includes, a pattern that matches a
# parent directory matches everything below it.
def ignore_patterns(path):
    pats = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        pat = line[1:] if neg else line
        pat = os.path.normpath(pat.strip("/"))
        rx = ""
        i = 0
        while i < len(pat):
            if pat.startswith("**", i):
                rx += ".*"
                i += 2
                if pat.startswith("/", i):
                    rx = rx[:-2] + "(.*/)?"
                    i += 1
            elif pat[i] == "*":
                rx += "[^/]*"
                i += 1
            elif pat[i] == "?":
                rx += "[^/]"
                i += 1
            else:
                rx += re.escape(pat[i])
                i += 1
        pats.append((re.compile("^" + rx + "$"), neg))
    return pats


def included(pats, rel):
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for rx, neg in pats:
        if any(rx.match(p) for p in prefixes):
            excluded = not neg
    return not excluded


def files_under(rel):
    p = Path(rel)
    if p.is_file():
        return [rel]
    return sorted(str(f) for f in p.rglob("*") if f.is_file())


# 3. the image build's inputs ---------------------------------------------
before = len(findings)
df = parse_dockerfile("infra/docker/Dockerfile")
ign = ignore_patterns("infra/docker/Dockerfile.dockerignore")
workspace = tomllib.loads(Path("Cargo.toml").read_text())["workspace"]["members"]
copies = [(rest, stage) for word, rest, stage in df if word == "COPY" and "--from" not in rest]
copied_src = []
for rest, stage in copies:
    args = [a for a in shlex.split(rest) if not a.startswith("--")]
    for src in args[:-1]:
        copied_src.append((src, args[-1], stage))
runs = "\n".join(rest for word, rest, stage in df if word == "RUN")

for m in workspace:
    if not any(src == f"{m}/Cargo.toml" and stage == "deps" for src, _, stage in copied_src):
        fail(f"Dockerfile: the deps stage does not copy {m}/Cargo.toml (a workspace member)")
    manifest = tomllib.loads(Path(m, "Cargo.toml").read_text())
    if m not in runs:
        fail(f"Dockerfile: no stub sources for workspace member {m}")
    for kind in ("bench", "test", "example", "bin"):
        for t in manifest.get(kind, []):
            path = t.get("path") or {"bench": "benches", "test": "tests", "example": "examples", "bin": "src/bin"}[kind] + f"/{t['name']}.rs"
            if f"{m}/{path}" not in runs and kind != "bin":
                fail(f"Dockerfile: no stub for the explicit {kind} target {m}/{path} (cargo refuses a workspace whose targets are missing)")
    if Path(m, "build.rs").exists() and not any(src == f"{m}/build.rs" for src, _, _ in copied_src):
        fail(f"Dockerfile: {m}/build.rs is not copied into the deps stage")
if "cargo build --locked --release --bin llmops" not in runs:
    fail("Dockerfile: the build is not `cargo build --locked --release --bin llmops` (scripts/lib.sh bench_build)")
if not re.search(r"find gateway migrations services -name '\*\.rs' -exec touch", runs):
    fail("Dockerfile: the real sources are not touched after the stub build (cargo could keep the stubs)")

# Every file a crate embeds from outside the copied source folders.
build_copies = [src for src, _, stage in copied_src if stage == "build"]
members_copied = {"gateway", "migrations", "services"}
for rs in Path(".").glob("*/**/*.rs"):
    if rs.parts[0] not in members_copied:
        continue
    for inc in re.findall(r'include_(?:str|bytes)!\(\s*"([^"]+)"', rs.read_text()):
        target = os.path.normpath(rs.parent / inc)
        if target.split("/")[0] in members_copied:
            continue
        if not any(target == s or target.startswith(s.rstrip("/") + "/") for s in build_copies):
            fail(f"Dockerfile: {rs} embeds {target}, which the build stage does not copy")

# Every context file COPY reads passes the .dockerignore, and the
# .dockerignore keeps the bulky and private folders out.
checked = 0
for src, _, stage in copied_src:
    files = files_under(src)
    if not files:
        fail(f"Dockerfile: COPY {src} names nothing in the repository")
    for f in files:
        if "__pycache__" in f or f.endswith(".pyc"):
            continue
        checked += 1
        if not included(ign, f):
            fail(f"Dockerfile.dockerignore excludes {f}, which COPY {src} needs")
for private in ("target/release/llmops", "data/llmops.db", ".git/HEAD", "services/core/target/x", "gateway/data/x", "README.md", "benches/gateway.sh", ".ci/run"):
    if included(ign, private):
        fail(f"Dockerfile.dockerignore lets {private} into the build context")
tri = parse_dockerfile("infra/docker/Dockerfile.triton")
tri_ign = ignore_patterns("infra/docker/Dockerfile.triton.dockerignore")
for word, rest, stage in tri:
    if word == "COPY" and "--from" not in rest:
        args = [a for a in shlex.split(rest) if not a.startswith("--")]
        for src in args[:-1]:
            for f in files_under(src):
                if "__pycache__" in f:
                    continue
                checked += 1
                if not included(tri_ign, f):
                    fail(f"Dockerfile.triton.dockerignore excludes {f}, which COPY {src} needs")
summary("image build inputs", before,
        f"{len(workspace)} workspace members stubbed, embedded files copied, {checked} context files COPY reads pass the .dockerignore files")

# 4. the runtime stages' contract -----------------------------------------
before = len(findings)
stages = {}
for word, rest, stage in df:
    stages.setdefault(stage, []).append((word, rest))
final = [s for w, r, s in df if w == "FROM"][-1]
if final != "runtime":
    fail(f"Dockerfile: the default (last) target is {final}, not runtime")


def effective(stage_name, word):
    """The instruction as the stage sees it, following FROM <stage> chains."""
    chain = []
    name = stage_name
    while name in stages:
        chain.append(name)
        base = stages[name][0][1].split()[0]
        name = base if base in stages else None
    for n in chain:
        vals = [r for w, r in stages[n] if w == word]
        if vals:
            return vals[-1]
    return None


for target in ("runtime", "trainer"):
    user = effective(target, "USER")
    if not user or not re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", user) or user.split(":")[0] == "0":
        fail(f"Dockerfile: target {target} runs as {user!r}, not a numeric non-root user")
    if not (effective(target, "HEALTHCHECK") or "").startswith("--"):
        fail(f"Dockerfile: target {target} has no HEALTHCHECK")
    if "/healthz" not in (effective(target, "HEALTHCHECK") or ""):
        fail(f"Dockerfile: target {target}'s HEALTHCHECK does not GET /healthz")
    if effective(target, "ENTRYPOINT") != '["/usr/local/bin/llmops"]' or effective(target, "CMD") != '["serve"]':
        fail(f"Dockerfile: target {target} is not ENTRYPOINT llmops, CMD serve")
    if "8080" not in (effective(target, "EXPOSE") or ""):
        fail(f"Dockerfile: target {target} does not EXPOSE 8080")
envs = " ".join(r for w, r in stages["runtime-base"] if w == "ENV")
for want in ("LLMOPS_LISTEN=0.0.0.0:8080", "LLMOPS_DATA_DIR=/var/lib/llmops"):
    if want not in envs:
        fail(f"Dockerfile: the runtime lacks ENV {want}")
tri_user = [r for w, r, s in tri if w == "USER"]
if not tri_user or not re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", tri_user[-1]):
    fail("Dockerfile.triton: not a numeric non-root USER")
if not any(w == "HEALTHCHECK" and "/v2/health/ready" in r for w, r, s in tri):
    fail("Dockerfile.triton: no HEALTHCHECK on /v2/health/ready")
summary("image contract", before, "runtime and trainer: numeric non-root user, HEALTHCHECK GET /healthz, ENTRYPOINT llmops CMD serve, EXPOSE 8080; Triton: non-root, /v2/health/ready")

# 5. compose.yaml -----------------------------------------------------------
before = len(findings)
compose_path = Path("infra/docker/compose.yaml")
compose = yaml.safe_load(compose_path.read_text())
services = compose["services"]
SECRETISH = re.compile(r"(SECRET|TOKEN|PASSWORD|API_KEY|DATABASE_URL)$")
REQUIRED_VAR = re.compile(r"\$\{[A-Z_][A-Z0-9_]*:\?[^}]*\}")
ANY_VAR = re.compile(r"\$\{[^}]*\}")
SPLIT_SERVICES = {"gateway", "registry", "serving", "billing", "training", "rag", "monitoring"}
dockerfile_healthcheck = {"infra/docker/Dockerfile": True, "infra/docker/Dockerfile.triton": True}


def env_dict(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    return {k: ("" if v is None else str(v)) for k, v in env.items()}


def healthy(name):
    svc = services[name]
    hc = svc.get("healthcheck")
    if hc is not None:
        return not hc.get("disable")
    build = svc.get("build")
    return bool(build) and dockerfile_healthcheck.get(build.get("dockerfile"), False)


for name, svc in services.items():
    where = f"compose.yaml {name}"
    image = svc.get("image", "")
    repo, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
    if not image or not tag or tag == "latest":
        fail(f"{where}: image {image!r} is not pinned by tag")
    if "build" in svc:
        b = svc["build"]
        ctx = (compose_path.parent / b.get("context", ".")).resolve()
        dfile = ctx / b.get("dockerfile", "Dockerfile")
        if not dfile.is_file():
            fail(f"{where}: build dockerfile {dfile} does not exist")
        elif b.get("target") and not re.search(rf"^FROM .* AS {re.escape(b['target'])}$", dfile.read_text(), re.M):
            fail(f"{where}: build target {b['target']} is not a stage of {dfile.name}")
    if svc.get("privileged"):
        fail(f"{where}: privileged")
    for port in svc.get("ports", []):
        if not str(port).startswith("127.0.0.1:"):
            fail(f"{where}: port {port} is published beyond 127.0.0.1")
    env = env_dict(svc)
    for k, v in env.items():
        if SECRETISH.search(k):
            if k.endswith("DATABASE_URL"):
                m = re.match(r"^[a-z]+://[^:/@]+:(.+)@", v)
                if not m or not REQUIRED_VAR.fullmatch(m.group(1)):
                    fail(f"{where}: {k}'s password is not a required ${{VAR:?}} substitution")
            elif not REQUIRED_VAR.fullmatch(v):
                fail(f"{where}: {k} is not a required ${{VAR:?}} substitution (a literal secret?)")
        for ref in ANY_VAR.findall(v):
            if not REQUIRED_VAR.fullmatch(ref):
                fail(f"{where}: {k} uses {ref}, which silently defaults when unset")
    for dep, cond in (svc.get("depends_on") or {}).items():
        if dep not in services:
            fail(f"{where}: depends on unknown service {dep}")
        elif cond.get("condition") == "service_healthy" and not healthy(dep):
            fail(f"{where}: waits for {dep} to be healthy, which has no health check")
    if image.startswith("llmops:"):
        cmd = svc.get("command") or ["serve"]
        if svc.get("read_only") is not True or "ALL" not in (svc.get("cap_drop") or []) \
                or "no-new-privileges:true" not in (svc.get("security_opt") or []):
            fail(f"{where}: an llmops container must be read_only, cap_drop ALL, no-new-privileges")
        if env.get("LLMOPS_AUTO_MIGRATE") != "false":
            fail(f"{where}: LLMOPS_AUTO_MIGRATE is not false (the migrate one-shot migrates)")
        for k in ("LLMOPS_DATABASE_URL", "LLMOPS_REDIS_URL", "LLMOPS_QDRANT_URL", "LLMOPS_TRITON_URL", "LLMOPS_OPERATOR_TOKEN", "LLMOPS_JWT_SECRET"):
            if k not in env:
                fail(f"{where}: no {k}")
        if not env.get("LLMOPS_QDRANT_URL", "").endswith(":6334") or not env.get("LLMOPS_TRITON_URL", "").endswith(":8001"):
            fail(f"{where}: Qdrant and Triton must be their gRPC ports (6334, 8001)")
        if cmd[0] == "migrate":
            if svc.get("restart") != "no":
                fail(f"{where}: the migrate one-shot must not restart")
            continue
        if cmd[0] != "serve":
            fail(f"{where}: runs {cmd}")
            continue
        if (svc.get("depends_on") or {}).get("migrate", {}).get("condition") != "service_completed_successfully":
            fail(f"{where}: does not wait for the migrations")
        svc_arg = cmd[cmd.index("--services") + 1] if "--services" in cmd else "all"
        if svc_arg != "all":
            for part in svc_arg.split(","):
                if part not in SPLIT_SERVICES:
                    fail(f"{where}: --services {part} is not a service")
            if "split" not in (svc.get("profiles") or []):
                fail(f"{where}: split-mode containers belong to the `split` profile")
            if "LLMOPS_INTERNAL_SECRET" not in env:
                fail(f"{where}: split mode needs LLMOPS_INTERNAL_SECRET")
            urls = dict(re.findall(r'(\w+)="http://([^:"]+):8080"', env.get("LLMOPS_SERVICE_URLS", "")))
            if set(urls) != SPLIT_SERVICES - {"gateway"}:
                fail(f"{where}: LLMOPS_SERVICE_URLS names {sorted(urls)}")
            for s, host in urls.items():
                target = services.get(host)
                tcmd = (target or {}).get("command") or []
                if not target or "--services" not in tcmd or s not in tcmd[tcmd.index("--services") + 1].split(","):
                    fail(f"{where}: LLMOPS_SERVICE_URLS sends {s} to {host}, which does not run it")
for required in ("postgres", "redis", "qdrant", "triton", "migrate", "llmops"):
    if required not in services:
        fail(f"compose.yaml: no {required} service")
for name in ("postgres", "redis", "qdrant"):
    if name in services and not healthy(name):
        fail(f"compose.yaml {name}: no healthcheck")
summary("compose.yaml", before, f"{len(services)} services: images pinned, secrets only as required substitutions, llmops hardened and wired, split profile consistent")

for f in findings:
    print(f"[docker]   finding: {f}", file=sys.stderr)
sys.exit(1 if findings else 0)
PY

echo "[docker] done in $(( $(date +%s) - start ))s"
exit "$status"
