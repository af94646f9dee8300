#!/usr/bin/env bash
# End-to-end events/s with the AWS backends on the local stand-ins: one
# `egressd serve --worker=false` and WORKERS `egressd worker` sidecars on
# MinIO, fauxqs and DynamoDB Local, reporting to stripe-mock. The load tool
# sends N pre-signed invocations over SPACES spaces, each with its own
# customer (Stripe takes one call at a time per customer). It prints the load
# tool's figures (how fast the server acknowledges: SQS send, S3 receipts,
# DynamoDB customer lookups) and the end-to-end rate: events acknowledged,
# ledgered and reported to Stripe, per second from the first request to the
# last event marked reported.
#
# With EGRESSD_BENCH_DRAIN=1 the workers start only once every invocation is
# acknowledged, which times the two halves apart: the server alone, then the
# workers draining a full queue.
#
# Needs the services: bash scripts/services.sh install && bash scripts/services.sh start
# Usage: bash scripts/bench-aws.sh [N] [WORKERS] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-2000}
workers=${2:-2}
concurrency=${3:-8}
spaces=${EGRESSD_BENCH_SPACES:-32}
port=${EGRESSD_BENCH_AWS_PORT:-27480}
url="http://127.0.0.1:$port"

eval "$(bash scripts/services.sh env)"
export AWS_ENDPOINT_URL_S3=$EGRESSD_TEST_S3_URL AWS_ENDPOINT_URL_SQS=$EGRESSD_TEST_SQS_URL \
	AWS_ENDPOINT_URL_DYNAMODB=$EGRESSD_TEST_DYNAMODB_URL
for u in "$EGRESSD_TEST_S3_URL/minio/health/live" "$EGRESSD_TEST_SQS_URL/health" "$EGRESSD_TEST_STRIPE_URL"; do
	curl -s -o /dev/null "$u" || { echo "nothing answers at $u: bash scripts/services.sh start" >&2; exit 1; }
done

work=$(mktemp -d)
bin="$work/egressd"
go build -o "$bin" ./cmd/egressd
name="egressd-bench-$(date +%s)-$RANDOM"
export EGRESSD_RECEIPTS="s3://$name" EGRESSD_QUEUE="sqs://$name" EGRESSD_TABLES="dynamodb://$name-"
export EGRESSD_DATA_DIR="$work/data"
"$bin" aws init --log-level warn >/dev/null
"$bin" key generate >"$work/service.key"
EGRESSD_KEY=$(tail -1 "$work/service.key")
export EGRESSD_KEY

echo "provisioning $spaces spaces, one customer each, in DynamoDB..."
space_flags=()
for i in $(seq "$spaces"); do
	"$bin" key generate >"$work/space.key"
	"$bin" provision --space "$(head -1 "$work/space.key" | cut -c3-)" --customer "did:mailto:bench.example:c$i" >/dev/null
	"$bin" customer set --customer "did:mailto:bench.example:c$i" --stripe-customer "cus_bench$i" >/dev/null
	space_flags+=(--space-key "$(tail -1 "$work/space.key")")
done

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
"$bin" serve --worker=false --listen "127.0.0.1:$port" --log-level warn >"$work/serve.log" 2>&1 &
pids+=($!)
metrics=()
start_workers() {
	for i in $(seq "$workers"); do
		STRIPE_SECRET_KEY=sk_test_123 "$bin" worker --stripe-url "$EGRESSD_TEST_STRIPE_URL" --stripe-rate 1000 \
			--stripe-meter-event test-meter-event-name --worker-concurrency 32 --metrics-listen "127.0.0.1:$((port + i))" --log-level warn >"$work/worker$i.log" 2>&1 &
		pids+=($!)
		metrics+=("http://127.0.0.1:$((port + i))/metrics")
	done
}
drain=${EGRESSD_BENCH_DRAIN:-0}
[ "$drain" = 1 ] || start_workers
for _ in $(seq 100); do curl -fs "$url/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

# Events the workers marked reported, from their metrics: polling the ledger
# itself would load DynamoDB Local, which is what is being measured.
reported() {
	for m in "${metrics[@]}"; do curl -fs "$m"; done |
		awk '/^egressd_billing_events_total\{state="reported"\}/ { n += $2 } END { printf "%d", n }'
}

# CPU ticks (1/100 s) of a process and all its descendants: a stand-in may
# run under a wrapper (a shell, npm).
tree_ticks() {
	cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" '{
		rest = substr($0, index($0, ") ") + 2); split(rest, f, " ")
		pid = $1 + 0; ppid[pid] = f[2] + 0; ticks[pid] = f[12] + f[13]
	} END {
		for (p in ppid) { q = p + 0; while (q > 1 && q != root) q = ppid[q]; if (q == root) sum += ticks[p] }
		printf "%d", sum
	}'
}
standins=(s3 sqs dynamodb)
declare -A before_ticks
for s in "${standins[@]}"; do
	before_ticks[$s]=$(tree_ticks "$(cat ".tools/run/$s.pid" 2>/dev/null || echo 0)")
done

echo "\$ egressd bench --url $url --n $n --concurrency $concurrency --space-key ... (x$spaces)   # $workers workers"
start=$(date +%s.%N)
"$bin" bench --url "$url" --n "$n" --concurrency "$concurrency" --server-pid "${pids[0]}" "${space_flags[@]}"
sent=$(date +%s.%N)
# What the stand-ins spent while the server took the load (with the
# workers running too unless EGRESSD_BENCH_DRAIN=1): their share is not the
# replica's cost, and on AWS runs elsewhere.
for s in "${standins[@]}"; do
	after=$(tree_ticks "$(cat ".tools/run/$s.pid" 2>/dev/null || echo 0)")
	awk -v s="$s" -v n="$n" -v d="$((after - ${before_ticks[$s]}))" 'BEGIN {
		printf "stand-in %s: %.2f s of CPU, %.0f µs per invocation\n", s, d / 100, d * 10000 / n }'
done
[ "$drain" = 1 ] && start_workers
while [ "$(reported)" -lt "$n" ]; do
	sleep 0.1
	if [ "$(echo "$(date +%s.%N) - $start > 600" | bc)" = 1 ]; then
		echo "not all events reported after 10 minutes" >&2
		"$bin" usage
		exit 1
	fi
done
done_at=$(date +%s.%N)
"$bin" usage | tail -3
awk -v n="$n" -v drain="$drain" -v s="$start" -v t="$sent" -v d="$done_at" 'BEGIN {
	printf "end to end: %d events acknowledged, ledgered and reported in %.1f s = %.0f events/s (the last reported %.1f s after the last request)\n", n, d - s, n / (d - s), d - t
	if (drain == 1) printf "workers alone: %d events drained from a full queue in %.1f s = %.0f events/s\n", n, d - t, n / (d - t)
}'
