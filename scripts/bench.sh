#!/usr/bin/env bash
# Reproduces the figures in BENCHMARKS.md on this machine: builds egressd,
# starts it on the embedded default in a temporary directory, and runs the
# load tool and the Go benchmarks. The load tool runs on the same machine.
# Usage: bash scripts/bench.sh [--soak]   (--soak adds the 60 s memory run)
#        bash scripts/bench.sh --peer     (egressd side by side with the JS
#        reference server of bench/peer, same invocations, one table: issue 16)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}

work=$(mktemp -d)
bin="$work/egressd"
port=${EGRESSD_BENCH_PORT:-18480}
url="http://127.0.0.1:$port"
go build -o "$bin" ./cmd/egressd

"$bin" serve --data-dir "$work/data" --listen "127.0.0.1:$port" --worker=false --log-level warn >"$work/serve.log" 2>&1 &
pid=$!
peer_pid=
cleanup() {
  for p in "$pid" $peer_pid; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 50); do curl -fs "$url/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

# --peer: the JS reference server (bench/peer: @ucanto/server with
# upload-api's record handler, in memory) loaded with the same key, spaces,
# invocations and load settings as egressd, one case after the other, so the
# ratios hold on whatever machine this runs on.
if [ "$mode" = "--peer" ]; then
  peer_port=${EGRESSD_PEER_PORT:-18481}
  peer_url="http://127.0.0.1:$peer_port"
  [ -d bench/peer/node_modules/@ucanto/server ] || npm ci --prefix bench/peer --no-audit --no-fund >/dev/null
  # A peer that accepted what upload-api refuses would flatter the ratios.
  node bench/peer/check.js
  # Provision the spaces once in egressd's store and write them (with the
  # provider and customer) for the peer to seed its consumer table.
  spaces="$work/spaces.json"
  "$bin" bench --url "$url" --data-dir "$work/data" --spaces-file "$spaces" --n 0
  node bench/peer/server.js --key "$work/data/service.key" --seed "$spaces" --port "$peer_port" >"$work/peer.log" 2>&1 &
  peer_pid=$!
  for _ in $(seq 100); do curl -fs "$peer_url/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fs "$peer_url/healthz" >/dev/null || { cat "$work/peer.log"; exit 1; }

  # measure NAME URL PID BENCH_FLAGS...: one load run, its result line kept in $work/NAME.
  measure() {
    local name=$1 target=$2 server=$3; shift 3
    echo "\$ egressd bench --url $target --server-pid $server $*"
    "$bin" bench --url "$target" --spaces-file "$spaces" --server-pid "$server" "$@" >"$work/$name.out" ||
      { cat "$work/$name.out"; exit 1; }
    cat "$work/$name.out"; echo
    grep '^result:' "$work/$name.out" >"$work/$name"
  }
  # Warm both up untimed (JIT, caches, first connections), as a running service would be.
  measure warm-egressd "$url" "$pid" --n 1000 --concurrency 4 --batch 100 >/dev/null
  measure warm-js "$peer_url" "$peer_pid" --n 1000 --concurrency 4 --batch 100 >/dev/null

  # The machine may be shared: each case runs PEER_ROUNDS times, the two
  # servers alternating, and each server's least disturbed round (its highest
  # rate, with that round's p99 and CPU) goes in the table.
  n_batch=${PEER_N_BATCH:-10000} n_single=${PEER_N_SINGLE:-5000}
  for r in $(seq "${PEER_ROUNDS:-2}"); do
    measure "batch-egressd.$r" "$url" "$pid" --n "$n_batch" --concurrency 4 --batch 100
    measure "batch-js.$r" "$peer_url" "$peer_pid" --n "$n_batch" --concurrency 4 --batch 100
    measure "single-egressd.$r" "$url" "$pid" --n "$n_single" --concurrency 8 --batch 1
    measure "single-js.$r" "$peer_url" "$peer_pid" --n "$n_single" --concurrency 8 --batch 1
  done
  for run in batch-egressd batch-js single-egressd single-js; do
    grep -h '^result:' "$work/$run".*.out | awk '{ split($2, a, "="); if (a[2] + 0 > best) { best = a[2] + 0; line = $0 } } END { print line }' >"$work/$run"
    echo "$run invocations/s by round:" $(grep -h '^result:' "$work/$run".*.out | sed 's/.* rate=\([^ ]*\).*/\1/')
  done
  # The floor is the lowest measured in this run: the machine's undisturbed
  # cost of the cryptography, the strictest yardstick for both servers.
  floor=$(grep -h '^result:' "$work"/*.out | sed 's/.* floor_us=\([^ ]*\).*/\1/' | sort -n | head -1)

  field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$work/$1"; }
  echo "| load | egressd inv/s | JS inv/s | egressd/JS | p99 egressd | p99 JS | CPU/inv egressd | CPU/inv JS | signature floor | CPU/floor egressd | CPU/floor JS |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  for c in "batch:100 per request, 4 clients:$n_batch" "single:1 per request, 8 clients:$n_single"; do
    IFS=: read -r key label count <<<"$c"
    e=$key-egressd j=$key-js
    awk -v label="$label ($count inv.)" \
      -v er="$(field "$e" rate)" -v jr="$(field "$j" rate)" -v ep="$(field "$e" p99_ms)" -v jp="$(field "$j" p99_ms)" \
      -v ec="$(field "$e" cpu_us)" -v jc="$(field "$j" cpu_us)" -v f="$floor" \
      'BEGIN { printf "| %s | %d | %d | **%.1f×** | %.1f ms | %.1f ms | %d µs | %d µs | %d µs | %.1f× | %.1f× |\n",
          label, er, jr, er / jr, ep, jp, ec, jc, f, ec / f, jc / f }'
  done
  exit
fi

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

if [ "$mode" = "--soak" ]; then
  echo "== 60 s at the single-invocation load, server memory sampled every second"
  run --n 120000 --concurrency 8 --batch 1
fi

echo "== Go benchmarks"
go test -run '^$' -bench 'Record' -benchtime 2000x ./server/
go test -run '^$' -bench . -benchtime 5000x ./billing/sqlite/
go test -run '^$' -bench Worker -benchtime 3000x ./billing/
