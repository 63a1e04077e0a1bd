#!/usr/bin/env bash
# sfu-cost.sh: the SFU's CPU per forwarded packet, measured the same way for
# two (or more) server binaries in one sitting, beside the CPU floor of
# ../shared/floor measured in the same sitting (issue 16's method).
#
# For each workload and repeat, each binary in turn:
#   - `BIN serve --dev` on loopback, log level warn, pinned to core 0;
#   - the load, `LOAD bench support --calls N` (1:1 calls, both sides
#     publishing audio and VP8) or `LOAD bench broadcast --subscribers K`
#     (fan-out), pinned to core 1; the pair alone in a private network
#     namespace (unshare -n), else on the host's loopback;
#   - once every call's video is subscribed on the server, a warm-up, then a
#     window over which the server's CPU (user, system), context switches
#     (every thread), forwarded packets, heap allocations and forwarding
#     latency histogram are differenced; RSS is read at the window's end;
#   - the load is then stopped (SIGINT) and must report every call up and
#     none failed, or the run is marked FAILED (and the script exits 1).
# Binaries alternate within a workload, in reverse order on every other
# repeat (A B, B A, ...), so that a drift of the machine falls on both.
#
# Usage:
#   scripts/sfu-cost.sh --bin old=/tmp/hc.old --bin new=/tmp/hc.new \
#       --calls 25,50,75 --subs 50,200 --repeat 2 --bitrate 1200k
# Options:
#   --bin LABEL=PATH  a server binary (repeatable; at least one)
#   --load PATH       the binary that runs `bench` for every run (default:
#                     the first --bin), so that every server gets the same load
#   --calls LIST      1:1 workloads: concurrent calls (default 25; "" or 0 for none)
#   --subs LIST       fan-out workloads: subscribers of one publisher
#                     (default 50,200; "" or 0 for none)
#   --repeat N        runs of each binary per workload (default 2)
#   --bitrate B       the bench's --bitrate (default 1200k)
#   --out FILE        the markdown report (default sfu-cost-<time>.md); the
#                     raw data of each run (scrapes, /proc, load report, server
#                     log) goes to the directory FILE without .md
#   --no-floor        skip the floor runs
# Environment knobs: SFU_COST_WARMUP (20, seconds), SFU_COST_WINDOW (30),
# SFU_COST_SETUP (60: seconds allowed for every call to come up, on top of
# the ramp), SFU_COST_RAMP_CALLS (5 calls/s), SFU_COST_RAMP_SUBS (10
# subscribers/s), SFU_COST_FLOOR_DIR (../shared/floor beside the repo, i.e.
# /work/shared/floor), SFU_COST_FLOOR_ARGS ("-v V3 -k 1,50"), SFU_COST_NETNS
# (1; 0 runs on the host's loopback, and adds --media-loopback-only),
# SFU_COST_SERVE_FLAGS (more flags for every server, e.g.
# --media-batch-writes).
set -euo pipefail

self=$(readlink -f "$0")
repo=$(cd "$(dirname "$self")/.." && pwd)

warm=${SFU_COST_WARMUP:-20}
window=${SFU_COST_WINDOW:-30}
setup=${SFU_COST_SETUP:-60}
ramp_calls=${SFU_COST_RAMP_CALLS:-5}
ramp_subs=${SFU_COST_RAMP_SUBS:-10}
floor_args=${SFU_COST_FLOOR_ARGS:-"-v V3 -k 1,50"}
hz=$(getconf CLK_TCK)

die() {
	echo "sfu-cost.sh: $*" >&2
	exit 1
}

# nap sleeps in the background and waits for it, so that a trapped signal
# is handled at once rather than after the sleep.
nap() {
	sleep "$1" &
	wait $! || true
}

now() { date +%s.%N; }

# --- one measurement (run inside the network namespace) ---------------------

# inner_measure KIND N BIN LOAD BITRATE DIR NETNS: runs one server and its
# load, writes raw samples to DIR, and exits 0 if the load came up whole.
inner_measure() {
	local kind=$1 n=$2 bin=$3 load=$4 bitrate=$5 dir=$6 netns=$7
	local srv="" ld=""
	cleanup_inner() {
		local p
		for p in $ld $srv; do
			kill -TERM "$p" 2>/dev/null || true
		done
		for p in $ld $srv; do
			for _ in $(seq 100); do
				kill -0 "$p" 2>/dev/null || break
				sleep 0.1
			done
			kill -KILL "$p" 2>/dev/null || true
			wait "$p" 2>/dev/null || true
		done
	}
	trap cleanup_inner EXIT
	trap 'exit 130' INT TERM

	local http=7880 media=7881 turn=3478 extra
	# shellcheck disable=SC2206 # a list of flags
	extra=(${SFU_COST_SERVE_FLAGS:-})
	if [ "$netns" = 1 ]; then
		ip link set lo up
	else
		http=$(free_port) media=$(free_port) turn=$(free_port)
		# Only lo is private to the pair in a namespace; on the host, keep
		# ICE off the other interfaces.
		extra+=(--media-loopback-only)
	fi
	local base="http://127.0.0.1:$http"
	taskset -c 0 "$bin" serve --dev --listen "127.0.0.1:$http" --media-udp-port "$media" --media-tcp-port "$media" \
		--turn-port "$turn" --log-level warn "${extra[@]}" >"$dir/server.log" 2>&1 &
	srv=$!
	echo "$srv" >"$dir/server.pid"
	local up=0
	for _ in $(seq 300); do
		kill -0 "$srv" 2>/dev/null || break
		if curl -sf -o "$dir/idle.prom" "$base/metrics"; then
			up=1
			break
		fi
		sleep 0.1
	done
	if [ "$up" != 1 ]; then
		echo "the server did not start ($bin); its log:" >"$dir/error"
		tail -20 "$dir/server.log" >>"$dir/error"
		exit 1
	fi

	# The load runs until it is stopped after the window; its duration is
	# only a cap.
	local args want ramp
	if [ "$kind" = support ]; then
		ramp=$ramp_calls
		args=(support --calls "$n" --ramp "$ramp")
		want=$((2 * n)) # each side subscribes to the other's video
	else
		ramp=$ramp_subs
		args=(broadcast --subscribers "$n" --ramp "$ramp")
		want=$((n + 1)) # the agent and every supervisor
	fi
	local ramp_s cap
	ramp_s=$(awk -v n="$n" -v r="$ramp" 'BEGIN { printf "%d", (r > 0 ? n / r : 0) + 1 }')
	cap=$((ramp_s + setup + warm + window + 60))
	taskset -c 1 "$load" bench "${args[@]}" --url "ws://127.0.0.1:$http" --demo --loopback --bitrate "$bitrate" \
		--duration "${cap}s" --json "$dir/load.json" --html - --quiet >"$dir/load.txt" 2>&1 &
	ld=$!

	# Every call up: the server has subscribed every receiver to video.
	local deadline m got=0
	deadline=$(($(date +%s) + ramp_s + setup))
	while :; do
		if m=$(curl -sf "$base/metrics"); then
			got=$(prom_sum helpcaster_sfu_subscribed_tracks 'kind="video"' <<<"$m")
			[ "${got%.*}" -ge "$want" ] && break
		fi
		if ! kill -0 "$ld" 2>/dev/null; then
			{
				echo "the load ended before every call was up (${got%.*} of $want video subscriptions); its output:"
				tail -30 "$dir/load.txt"
			} >"$dir/error"
			exit 1
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			{
				echo "a call did not come up: ${got%.*} of $want video subscriptions after $((ramp_s + setup)) s (SFU_COST_SETUP)"
			} >"$dir/error"
			exit 1
		fi
		nap 1
	done
	echo "$got" >"$dir/subscribed"

	nap "$warm"
	sample "$srv" "$ld" "$base" "$dir/t0"
	nap "$window"
	sample "$srv" "$ld" "$base" "$dir/t1"
	got=$(prom_sum helpcaster_sfu_subscribed_tracks 'kind="video"' <"$dir/t1.prom")
	if ! kill -0 "$ld" 2>/dev/null || [ "${got%.*}" -lt "$want" ]; then
		echo "calls dropped during the window: ${got%.*} of $want video subscriptions at its end, load alive: $(kill -0 "$ld" 2>/dev/null && echo yes || echo no)" >"$dir/error"
		exit 1
	fi

	# Stop the load; it reports what it saw.
	kill -INT "$ld"
	local rc=0
	for _ in $(seq 600); do
		kill -0 "$ld" 2>/dev/null || break
		sleep 0.1
	done
	wait "$ld" || rc=$?
	ld=""
	echo "$rc" >"$dir/load.rc"
	if [ ! -s "$dir/load.json" ]; then
		{
			echo "the load wrote no report (exit $rc); its output:"
			tail -30 "$dir/load.txt"
		} >"$dir/error"
		exit 1
	fi
	local target upn failed
	read -r target upn failed < <(jq -r '[.calls.target, .calls.up, .calls.failed] | @tsv' "$dir/load.json")
	if [ "$upn" -lt "$target" ] || [ "$failed" -gt 0 ]; then
		echo "the load reports $upn of $target calls up, $failed failed: $(jq -c '.calls.failures // {}' "$dir/load.json")" >"$dir/error"
		exit 1
	fi
	exit 0
}

# sample PID LOADPID BASE PREFIX: the server's /proc figures and metrics,
# and the load's CPU, at one edge of the window.
sample() {
	local pid=$1 ld=$2 base=$3 out=$4
	if ! kill -0 "$pid" 2>/dev/null || ! kill -0 "$ld" 2>/dev/null; then
		echo "the $(kill -0 "$pid" 2>/dev/null && echo load || echo server) ended before the window closed; see load.txt and server.log" >"${out%/*}/error"
		exit 1
	fi
	now >"$out.time"
	# utime and stime: fields 14 and 15, counted after the ")" that ends
	# the command name.
	sed 's/.*) //' "/proc/$pid/stat" | awk '{ print $12, $13 }' >"$out.cpu"
	sed 's/.*) //' "/proc/$ld/stat" | awk '{ print $12 + $13 }' >"$out.loadcpu"
	cat /proc/"$pid"/task/*/status 2>/dev/null |
		awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ { s += $2 } END { print s + 0 }' >"$out.ctx"
	curl -sf -o "$out.prom" "$base/metrics"
}

# prom_sum NAME [LABEL_MATCH]: the sum of the series NAME (exactly) on
# stdin whose labels contain LABEL_MATCH (e.g. direction="out").
prom_sum() {
	awk -v name="$1" -v match_="${2:-}" '
		/^#/ { next }
		{
			n = $1; sub(/\{.*/, "", n)
			if (n != name) next
			if (match_ != "" && index($0, match_) == 0) next
			s += $NF
		}
		END { printf "%.6f\n", s + 0 }'
}

# free_port prints a TCP and UDP port nothing on this host listens on.
free_port() {
	local p
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % 40000))
		if [ -z "$(ss -Hlntu "( sport = :$p )" 2>/dev/null)" ]; then
			echo "$p"
			return
		fi
	done
	die "no free port"
}

if [ "${1:-}" = --inner ]; then
	shift
	inner_measure "$@"
fi

# --- the sitting -------------------------------------------------------------

bins=() labels=() load="" calls=25 subs=50,200 repeat=2 bitrate=1200k out="" floor=1
while [ $# -gt 0 ]; do
	case $1 in
	--bin)
		[ $# -ge 2 ] && [[ $2 == *=* ]] || die "--bin takes LABEL=PATH"
		labels+=("${2%%=*}") bins+=("$(readlink -f "${2#*=}")")
		shift 2
		;;
	--load) load=$(readlink -f "$2") && shift 2 ;;
	--calls) calls=$2 && shift 2 ;;
	--subs) subs=$2 && shift 2 ;;
	--repeat) repeat=$2 && shift 2 ;;
	--bitrate) bitrate=$2 && shift 2 ;;
	--out) out=$2 && shift 2 ;;
	--no-floor) floor=0 && shift ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$self" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
done
[ ${#bins[@]} -ge 1 ] || die "give at least one --bin LABEL=PATH (see --help)"
for b in "${bins[@]}"; do
	[ -x "$b" ] || die "$b is not an executable"
done
load=${load:-${bins[0]}}
[ -x "$load" ] || die "--load $load is not an executable"
[[ $repeat =~ ^[1-9][0-9]*$ ]] || die "--repeat must be a positive integer"
for t in taskset curl jq awk ss; do
	command -v "$t" >/dev/null || die "$t not found"
done
[ "$(nproc)" -ge 2 ] || die "needs two cores (server on core 0, load on core 1)"
if [[ $("$load" bench support --help 2>&1) != *--bitrate* ]]; then
	die "$load has no 'bench' with --bitrate"
fi

stamp=$(date -u +%Y%m%d-%H%M%S)
out=${out:-sfu-cost-$stamp.md}
raw=${out%.md}
mkdir -p "$raw"
: >"$out"

netns=${SFU_COST_NETNS:-1}
netns_note="each server and its load alone in a private network namespace (unshare -n, only lo)"
if [ "$netns" = 1 ] && ! unshare -n true 2>/dev/null; then
	echo "sfu-cost.sh: unshare -n is not allowed here; running on the host's loopback instead" >&2
	netns=0
fi
if [ "$netns" != 1 ]; then
	netns_note="on the host's loopback (no private network namespace; free ports, --media-loopback-only)"
fi

# The running child (a measurement or the floor) is a session of its own:
# cleanup ends that process group, and only it.
child=""
cleanup() {
	if [ -n "$child" ]; then
		kill -TERM -- "-$child" 2>/dev/null || true
		for _ in $(seq 150); do
			kill -0 "$child" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL -- "-$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
		child=""
	fi
}
trap cleanup EXIT
trap 'echo "sfu-cost.sh: interrupted" >&2; exit 130' INT TERM

say() { printf '%s\n' "$*" | tee -a "$out"; }

# --- the floor -----------------------------------------------------------------

floor_dir=${SFU_COST_FLOOR_DIR:-$(readlink -f "$repo/../shared/floor" 2>/dev/null || echo /work/shared/floor)}
[ -d "$floor_dir" ] || floor_dir=/work/shared/floor
floor_bin=""
if [ "$floor" = 1 ]; then
	[ -f "$floor_dir/main.go" ] || die "no floor at $floor_dir (SFU_COST_FLOOR_DIR, or --no-floor)"
	floor_bin=$raw/floor
	(cd "$floor_dir" && go build -o "$floor_bin" .) || die "cannot build the floor in $floor_dir"
fi
declare -A floor_us=() # "K" -> "µs µs ..." over the floor runs

# run_floor NAME: runs the floor (it pins itself: forwarder core 0, load
# core 1) and records its µs per egress packet by K.
run_floor() {
	[ "$floor" = 1 ] || return 0
	local f=$raw/floor-$1.md
	# shellcheck disable=SC2086 # floor_args is a list of flags
	setsid "$floor_bin" $floor_args >"$f" 2>"$f.err" &
	child=$!
	wait "$child" || true
	child=""
	local k us
	while read -r k us; do
		floor_us[$k]="${floor_us[$k]:-} $us"
	done < <(awk -F'|' '$2 ~ /^ *V3 *$/ && $3 ~ /[0-9]/ { gsub(/ /, "", $3); gsub(/ /, "", $9); print $3, $9 }' "$f")
	echo "floor ($1): $(awk -F'|' '$2 ~ /^ *V3 *$/ { gsub(/ /, "", $3); gsub(/ /, "", $9); printf "K=%s %s µs  ", $3, $9 }' "$f")" >&2
}

# floor_mean K: the mean of the floor's µs per egress at K, or "".
floor_mean() {
	# shellcheck disable=SC2086
	[ -n "${floor_us[$1]:-}" ] && echo ${floor_us[$1]} | awk '{ for (i = 1; i <= NF; i++) s += $i; printf "%.2f", s / NF }'
}

# --- one run -------------------------------------------------------------------

rows=()
failures=0

# measure KIND N LABEL BIN REP
measure() {
	local kind=$1 n=$2 label=$3 bin=$4 rep=$5
	local dir=$raw/$kind-$n-$label-$rep
	rm -rf "$dir" && mkdir -p "$dir"
	echo "sfu-cost.sh: $kind $n, $label, run $rep ..." >&2
	local wrap=(setsid)
	if [ "$netns" = 1 ]; then
		wrap+=(unshare -n --)
	fi
	"${wrap[@]}" bash "$self" --inner "$kind" "$n" "$bin" "$load" "$bitrate" "$dir" "$netns" </dev/null &
	child=$!
	local rc=0
	wait "$child" || rc=$?
	child=""
	local what=$kind
	[ "$kind" = support ] && what="1:1 ×$n" || what="1→$n"
	if [ "$rc" != 0 ] || [ -s "$dir/error" ]; then
		failures=$((failures + 1))
		local why
		why=$(head -1 "$dir/error" 2>/dev/null || echo "exit $rc")
		echo "sfu-cost.sh: FAILED: $what, $label, run $rep: $why (see $dir)" >&2
		rows+=("| $what | $label | $rep | FAILED: $why |")
		return
	fi
	rows+=("$(row "$kind" "$n" "$label" "$rep" "$dir")")
	echo "${rows[-1]}" >&2
}

# row KIND N LABEL REP DIR: the table row of one run's raw data.
row() {
	local kind=$1 n=$2 label=$3 rep=$4 dir=$5
	local secs u0 s0 u1 s1 out_pkts mallocs rss idle ctx load_cpu fl
	secs=$(awk -v a="$(cat "$dir/t0.time")" -v b="$(cat "$dir/t1.time")" 'BEGIN { print b - a }')
	read -r u0 s0 <"$dir/t0.cpu"
	read -r u1 s1 <"$dir/t1.cpu"
	d() { # metric delta over the window
		awk -v a="$(prom_sum "$1" "${2:-}" <"$dir/t0.prom")" -v b="$(prom_sum "$1" "${2:-}" <"$dir/t1.prom")" 'BEGIN { print b - a }'
	}
	out_pkts=$(d helpcaster_sfu_rtp_packets_total 'direction="out"')
	mallocs=$(d go_memstats_mallocs_total)
	rss=$(prom_sum process_resident_memory_bytes <"$dir/t1.prom")
	idle=$(prom_sum process_resident_memory_bytes <"$dir/idle.prom")
	ctx=$(($(cat "$dir/t1.ctx") - $(cat "$dir/t0.ctx")))
	load_cpu=$(($(cat "$dir/t1.loadcpu") - $(cat "$dir/t0.loadcpu")))
	if [ "$kind" = support ]; then fl=$(floor_mean 1); else fl=$(floor_mean 50); fi
	local lat
	lat=$(latency_quantiles "$dir/t0.prom" "$dir/t1.prom")
	local loss
	loss=$(jq -r '"\(.calls.up)/\(.calls.target) up, loss \(((.audio.lost + .video.lost) * 100 / ([.audio.expected + .video.expected, 1] | max)) * 1000 | round / 1000)%"' "$dir/load.json")
	awk -v kind="$kind" -v n="$n" -v label="$label" -v rep="$rep" -v secs="$secs" -v hz="$hz" \
		-v du="$((u1 - u0))" -v ds="$((s1 - s0))" -v out="$out_pkts" -v ctx="$ctx" -v mallocs="$mallocs" \
		-v rss="$rss" -v idle="$idle" -v fl="$fl" -v lat="$lat" -v lcpu="$load_cpu" -v loadres="$loss" 'BEGIN {
		cpu = (du + ds) / hz
		us = out > 0 ? 1e6 * cpu / out : 0
		what = kind == "support" ? "1:1 ×" n : "1→" n
		ratio = fl > 0 ? sprintf("%.2f", us / fl) : "-"
		split_ = (du + ds) > 0 ? sprintf("%.0f / %.0f", 100 * du / (du + ds), 100 * ds / (du + ds)) : "-"
		sw = out > 0 ? ctx / out : 0
		al = out > 0 ? mallocs / out : 0
		printf "| %s | %s | %s | %.0f | %.1f | %.2f | %s | %s | %.3f | %.2f | %.0f | %.2f | %s | %.0f | %s |\n",
			what, label, rep, out / secs, 100 * cpu / secs, us, ratio, split_, sw, al,
			rss / 1048576, (rss - idle) / 1048576 / n, lat, 100 * lcpu / hz / secs, loadres
	}'
}

# latency_quantiles T0 T1: p50 / p99 of the forwarding latency histogram's
# samples in the window, in µs, interpolated within buckets (as Prometheus'
# histogram_quantile does).
latency_quantiles() {
	local name=helpcaster_sfu_forward_latency_seconds_bucket
	{
		grep "^$name{" "$1" | sed 's/.*le="\([^"]*\)".* \([^ ]*\)$/a \1 \2/'
		grep "^$name{" "$2" | sed 's/.*le="\([^"]*\)".* \([^ ]*\)$/b \1 \2/'
	} | awk '
		$1 == "a" { a[$2] = $3; next }
		{ b[$2] = $3; les[++m] = $2 }
		function q(p,   rank, i, prev, prevle, c, le) {
			rank = p * total; prev = 0; prevle = 0
			for (i = 1; i <= m; i++) {
				le = les[i]; c = b[le] - a[le]
				if (c >= rank && c > 0) {
					if (le == "+Inf") return sprintf(">%.0f", prevle * 1e6)
					return sprintf("%.0f", 1e6 * (prevle + (le - prevle) * (rank - prev) / (c - prev > 0 ? c - prev : 1)))
				}
				prev = c; prevle = le
			}
			return "-"
		}
		END {
			# Buckets in the order the exposition gives them (ascending le).
			total = b["+Inf"] - a["+Inf"]
			if (total <= 0) { print "-"; exit }
			printf "%s / %s", q(0.5), q(0.99)
		}'
}

# --- the sitting -----------------------------------------------------------------

say "# SFU cost per forwarded packet, $(date -u '+%Y-%m-%d %H:%M UTC')"
say ""
say "Machine: $(nproc) cores, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at the start."
say "Method: scripts/sfu-cost.sh: \`serve --dev --log-level warn${SFU_COST_SERVE_FLAGS:+ $SFU_COST_SERVE_FLAGS}\` pinned to core 0 (GOMAXPROCS 1), the load (\`bench\` of $(basename "$load"), --bitrate $bitrate, --loopback) pinned to core 1, $netns_note; ${warm} s warm-up after every call's video is subscribed, then a ${window} s window; server CPU and context switches from /proc, packets, allocations and latency from its /metrics."
for i in "${!bins[@]}"; do
	say "- \`${labels[$i]}\`: ${bins[$i]} (sha256 $(sha256sum "${bins[$i]}" | cut -c1-12), $("${bins[$i]}" version 2>/dev/null | head -1))"
done
say ""

run_floor start
IFS=, read -r -a calls_list <<<"$calls"
IFS=, read -r -a subs_list <<<"$subs"
workloads=()
for n in "${calls_list[@]}"; do [ -n "$n" ] && [ "$n" != 0 ] && workloads+=("support $n"); done
for n in "${subs_list[@]}"; do [ -n "$n" ] && [ "$n" != 0 ] && workloads+=("broadcast $n"); done
for w in "${workloads[@]}"; do
	read -r kind n <<<"$w"
	for rep in $(seq "$repeat"); do
		order=("${!bins[@]}")
		if [ $((rep % 2)) = 0 ]; then
			order=()
			for ((i = ${#bins[@]} - 1; i >= 0; i--)); do order+=("$i"); done
		fi
		for i in "${order[@]}"; do
			measure "$kind" "$n" "${labels[$i]}" "${bins[$i]}" "$rep"
		done
	done
done
run_floor end

say "| workload | binary | run | forwarded pkt/s | server CPU % of core 0 | µs CPU / forwarded pkt | × floor | user / sys % | ctx switches / pkt | allocs / pkt | RSS MiB | MiB / call | fwd latency p50 / p99 µs | load CPU % of core 1 | load |"
say "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
for r in "${rows[@]}"; do say "$r"; done
say ""
if [ "$floor" = 1 ]; then
	figures=$(for k in $(printf '%s\n' "${!floor_us[@]}" | sort -n); do
		# shellcheck disable=SC2086
		printf 'V3 K=%s: %s µs per egress packet; ' "$k" "$(echo ${floor_us[$k]} | sed 's/ /, /g')"
	done)
	say "Floor (../shared/floor \`$floor_args\`, this sitting, at its start and its end): $figures× floor = µs per forwarded packet / the floor's mean (1:1 rows: K=1; fan-out rows: K=50)."

fi
say "MiB / call: (RSS at the window's end - RSS before any client) / calls (fan-out: / subscribers). Latency: the SFU's read-to-write histogram (one packet in 32), over the window. Load: the bench's own report (calls up, loss over its whole run). Raw data: $raw/"
echo "sfu-cost.sh: report written to $out" >&2
if [ "$failures" -gt 0 ]; then
	die "$failures run(s) FAILED (see the table)"
fi
