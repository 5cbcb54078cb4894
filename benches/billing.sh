#!/usr/bin/env bash
# Billing at period end on PostgreSQL: closing a period for N tenants
# (invoices/s), then pushing those invoices to a Stripe-compatible server
# (localstripe, one Python process) until every one is `pushed`.
#
#   benches/billing.sh [tenants=200]
set -euo pipefail
cd -P "$(dirname "$0")/.."
. scripts/lib.sh
n=${1:-200}
work=$(mktemp -d /tmp/llmops-bench.XXXXXX)
chmod 755 "$work"
server="" stripe=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  [ -n "$stripe" ] && kill "$stripe" 2>/dev/null || true
  stop_pg "$work/pg"
  rm -rf "$work"
}
trap cleanup EXIT
bench_binary
bin="$BENCH_BIN"
start_pg "$work/pg"
py=$(stripe_python)
sport=$(free_port)
"$py" infra/stripe/localstripe_serve.py "$sport" >"$work/localstripe.log" 2>&1 &
stripe=$!
for _ in $(seq 1 100); do curl -s -o /dev/null -u sk_test_bench: "http://127.0.0.1:$sport/v1/customers" && break; sleep 0.1; done
op=bench-operator-token-0123456789
export LLMOPS_DATABASE_URL="$PG_URL" LLMOPS_DATA_DIR="$work/data" LLMOPS_LISTEN=127.0.0.1:0 \
       LLMOPS_OPERATOR_TOKEN=$op LLMOPS_LOG_FORMAT=json LLMOPS_BILLING_SETTLE_SECS=0 \
       LLMOPS_BILLING_AUTO_CLOSE=false LLMOPS_STRIPE_API_KEY=sk_test_bench \
       LLMOPS_STRIPE_API_BASE="http://127.0.0.1:$sport"
"$bin" migrate >/dev/null
start_llmops "$bin" "$work/serve"
server=$LLMOPS_PID
url=$LLMOPS_BASE
export URL="$url" OP="$op" N="$n"
python3 - <<'PY'
import json, os, time, urllib.request

url, op, n = os.environ["URL"], os.environ["OP"], int(os.environ["N"])

def call(method, path, body=None):
    req = urllib.request.Request(url + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"authorization": f"Bearer {op}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read() or b"null")

call("POST", "/admin/v1/plans", {"id": "bench", "requests_per_minute": 1000,
     "tokens_per_minute": 1000000, "concurrent_requests": 10})
M = 1_000_000
call("PUT", "/admin/v1/plans/bench/pricing", {"currency": "USD", "base_fee_minor": 2000, "components": [
    {"meter": "input_tokens", "included": M, "mode": "graduated", "description": "Input tokens",
     "tiers": [{"up_to": 9 * M, "rate": {"amount_minor": 50, "per": M}},
               {"up_to": None, "rate": {"amount_minor": 25, "per": M}}]},
    {"meter": "output_tokens", "mode": "volume", "description": "Output tokens",
     "tiers": [{"up_to": 10 * M, "rate": {"amount_minor": 50, "per": M}},
               {"up_to": None, "rate": {"amount_minor": 30, "per": M}}]}]})
tenants = []
for i in range(n):
    t = call("POST", "/admin/v1/tenants", {"name": f"bench-{i}", "admin_email": f"b{i}@bench.test",
                                           "admin_password": "correct horse battery staple", "plan": "bench"})
    tenants.append(t["tenant_id"])
events = []
for i, t in enumerate(tenants):
    for d in range(1, 11):
        events.append({"id": f"e-{i}-{d}-in", "tenant_id": t, "meter": "input_tokens", "quantity": (i % 7 + 1) * M,
                       "dimensions": {"model": "m"}, "occurred_at": f"2026-10-{d:02d}T12:00:00Z"})
        events.append({"id": f"e-{i}-{d}-out", "tenant_id": t, "meter": "output_tokens", "quantity": (i % 5 + 1) * M,
                       "dimensions": {"model": "m"}, "occurred_at": f"2026-10-{d:02d}T12:00:00Z"})
for k in range(0, len(events), 1000):
    call("POST", "/admin/v1/usage/events", {"events": events[k:k + 1000]})
t0 = time.monotonic()
invoices = call("POST", "/admin/v1/billing/close-period",
                {"period_start": "2026-10-01T00:00:00Z", "period_end": "2026-11-01T00:00:00Z"})
closed = time.monotonic() - t0
assert len(invoices) == n, len(invoices)
print(f"close-period: {n} tenants, {len(events)} usage events -> {n} invoices in {closed:.2f} s "
      f"({n / closed:.0f} invoices/s)")
PY
t0=$(date +%s.%N)
while :; do
  done_n=$(psql -h 127.0.0.1 -p "$PG_PORT" -U "$(pg_user)" -tAc "select count(*) from stripe_pushes where status = 'pushed'" 2>/dev/null || echo 0)
  failed=$(psql -h 127.0.0.1 -p "$PG_PORT" -U "$(pg_user)" -tAc "select count(*) from stripe_pushes where status in ('failed', 'retrying')" 2>/dev/null || echo 0)
  [ "$done_n" -ge "$n" ] && break
  [ "$failed" -gt 0 ] && { echo "pushes failing:"; psql -h 127.0.0.1 -p "$PG_PORT" -U "$(pg_user)" -tAc "select last_error from stripe_pushes where last_error is not null limit 3"; exit 1; }
  sleep 0.2
done
t1=$(date +%s.%N)
calls=$(grep -c '"[A-Z]* /v1/' "$work/localstripe.log" || true)
python3 -c "
n=$n; s=$t1-$t0; c=$calls
print(f'stripe push: {n} invoices pushed to localstripe in {s:.1f} s ({n/s:.1f} invoices/s), {c} Stripe API calls ({c/n:.1f} per invoice, first push of each tenant)')"
