#!/usr/bin/env bash
# The short standard bench set (make bench): the Go micro-benchmarks, then
# `helpcaster bench` scenarios against a `helpcaster serve --dev` started
# here on loopback. Reports go to bench-results/. Knobs (environment):
# BENCH_CALLS (10), BENCH_DURATION (30s), BENCH_CUSTOMERS (1000),
# BENCH_AGENTS (50), BENCH_SUBSCRIBERS (50), BENCH_MEDIA_PORT (7881; TURN takes 3478), BENCH_GO=0 skips
# the Go benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
out=bench-results
mkdir -p bin "$out"

if [ "${BENCH_GO:-1}" != 0 ]; then
	$GO test -run='^$' -bench=. -benchtime=1s -benchmem ./... | tee "$out/go-bench.txt"
fi

$GO build -o bin/helpcaster ./cmd/helpcaster
log=$(mktemp)
bin/helpcaster serve --dev --listen 127.0.0.1:0 --media-udp-port "${BENCH_MEDIA_PORT:-7881}" --media-tcp-port "${BENCH_MEDIA_PORT:-7881}" >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -f "$log"' EXIT
base=""
for _ in $(seq 100); do
	base=$(sed -n 's/.*helpcaster serving.* http=\(http:[^ ]*\).*/\1/p' "$log" | head -1)
	[ -n "$base" ] && break
	sleep 0.1
done
if [ -z "$base" ]; then
	echo "bench.sh: the server did not start:" >&2
	cat "$log" >&2
	exit 1
fi
url="ws${base#http}"
echo "bench.sh: server at $base (pid $pid)"

stamp=$(date +%Y%m%d-%H%M%S)
bin/helpcaster bench support --url "$url" --demo --loopback --calls "${BENCH_CALLS:-10}" \
	--duration "${BENCH_DURATION:-30s}" --json "$out/support-$stamp.json" --html "$out/support-$stamp.html"
bin/helpcaster bench queue --url "$url" --demo --customers "${BENCH_CUSTOMERS:-1000}" --agents "${BENCH_AGENTS:-50}" \
	--ramp 150 --duration 2m --json "$out/queue-$stamp.json" --html "$out/queue-$stamp.html"
bin/helpcaster bench turn --url "$url" --demo --loopback --calls 2 --duration 20s \
	--json "$out/turn-$stamp.json" --html "$out/turn-$stamp.html"
bin/helpcaster bench broadcast --url "$url" --demo --loopback --subscribers "${BENCH_SUBSCRIBERS:-50}" --ramp 10 \
	--duration "${BENCH_DURATION:-30s}" --json "$out/broadcast-$stamp.json" --html "$out/broadcast-$stamp.html"
