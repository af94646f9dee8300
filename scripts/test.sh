#!/usr/bin/env bash
# The one command that runs the whole test suite:
#   bash scripts/test.sh
# It installs and starts the local test services (scripts/services.sh), runs
# `go test ./...` against them, then the JS interop suite in interop/ when it exists,
# and stops the services it started. Extra arguments go to `go test`
# (e.g. bash scripts/test.sh -run TestFoo); they replace the default ./...
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

services() { bash "$REPO/scripts/services.sh" "$@"; }
say() { printf '\n=== test.sh: %s\n' "$*"; }

t0=$SECONDS
say "installing test services"
services install

started="$(mktemp)"
# Stop only what this run started; servers that were already running stay up.
stop_started() {
	if [ -f "$started" ]; then
		# shellcheck disable=SC2046 # one service name per line
		services stop $(cat "$started") || true
		rm -f "$started"
	fi
}
cleanup() {
	local rc=$?
	stop_started
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "starting test services"
EGRESSD_SERVICES_STARTED_FILE="$started" services start
eval "$(services env)"

go_args=("$@")
[ ${#go_args[@]} -gt 0 ] || go_args=(./...)

say "go test -count=1 -timeout 20m ${go_args[*]}"
go_status=0
go test -count=1 -timeout 20m "${go_args[@]}" || go_status=$?

interop_status=0
interop_result="skipped (no interop/package.json)"
if [ -f interop/package.json ]; then
	say "interop: installing npm dependencies"
	if [ -f interop/package-lock.json ]; then
		npm ci --prefix interop --no-audit --no-fund --loglevel=error || interop_status=$?
	else
		npm install --prefix interop --no-audit --no-fund --loglevel=error || interop_status=$?
	fi
	if [ "$interop_status" -eq 0 ]; then
		say "interop: npm test"
		npm test --prefix interop || interop_status=$?
	fi
	if [ "$interop_status" -eq 0 ]; then interop_result="ok"; else interop_result="FAILED (exit $interop_status)"; fi
fi

say "stopping test services"
stop_started

if [ "$go_status" -eq 0 ]; then go_result="ok"; else go_result="FAILED (exit $go_status)"; fi
say "summary after $((SECONDS - t0))s: go test ${go_result}; interop ${interop_result}"

[ "$go_status" -eq 0 ] && [ "$interop_status" -eq 0 ]
