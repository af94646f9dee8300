#!/usr/bin/env bash
# Reproduces the figures in BENCHMARKS.md on this machine: builds egressd,
# starts it on the embedded default in a temporary directory, and runs the
# load tool and the Go benchmarks. The load tool runs on the same machine.
# Usage: bash scripts/bench.sh [--soak]   (--soak adds the 60 s memory run)
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
bin="$work/egressd"
port=${EGRESSD_BENCH_PORT:-18480}
url="http://127.0.0.1:$port"
go build -o "$bin" ./cmd/egressd

"$bin" serve --data-dir "$work/data" --listen "127.0.0.1:$port" --worker=false --log-level warn >"$work/serve.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -fs "$url/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

run() { echo "\$ egressd bench $*"; "$bin" bench --url "$url" --data-dir "$work/data" --server-pid "$pid" "$@"; echo; }

echo "== server: 1 invocation per request, 8 clients"
run --n 2000 --concurrency 8 --batch 1
run --n 10000 --concurrency 8 --batch 1
echo "== server: 100 invocations per request"
run --n 10000 --concurrency 4 --batch 100
echo "== worker: fake Stripe, rate limit off"
echo "\$ egressd bench --worker --n 20000 --concurrency 32"
"$bin" bench --worker --n 20000 --concurrency 32
echo

if [ "${1:-}" = "--soak" ]; then
  echo "== 60 s at the single-invocation load, server memory sampled every second"
  run --n 120000 --concurrency 8 --batch 1
fi

echo "== Go benchmarks"
go test -run '^$' -bench 'Record' -benchtime 2000x ./server/
go test -run '^$' -bench . -benchtime 5000x ./billing/sqlite/
go test -run '^$' -bench Worker -benchtime 3000x ./billing/
