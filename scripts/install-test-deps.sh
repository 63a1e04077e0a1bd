#!/usr/bin/env bash
# Installs what HelpCaster's tests need and this machine lacks. Idempotent:
# when everything is present it changes nothing (and needs no root).
#
#   scripts/install-test-deps.sh          system packages for `make test` (Debian/Ubuntu, as root),
#                                         and versitygw (S3-compatible test server) built into ./bin
#   scripts/install-test-deps.sh --lint   staticcheck into ./bin, and luac5.1 and luacheck (as root), for `make lint`
#
# System packages are checked by a command (or file) they provide; apt-get
# update runs once, and only when something is missing.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf 'install-test-deps: %s\n' "$*"; }
die() { printf 'install-test-deps: %s\n' "$*" >&2; exit 1; }

# "check|package[ package...]|why" — check is a command name, or an absolute
# path that must exist. Add lines here when tests need more tools.
system_needs=(
	"gcc|gcc|C compiler for go test -race (cgo)"
	"/usr/include/stdio.h|libc6-dev|C library headers for go test -race (cgo)"
	"chromium|chromium|headless browser for the e2e test"
	"firefox-esr|firefox-esr|headless Firefox for the e2e test (driven over WebDriver BiDi)"
	"ffprobe|ffmpeg|regenerating and probing test media (make samples), and checking recordings (recorder tests: ffprobe, ffmpeg)"
	"ip|iproute2|ip, to bring up loopback in the test network namespace"
	"unshare|util-linux|unshare, to run the browser test in a network namespace"
	"redis-server|redis-server|private Redis servers for the queue store tests (started by the tests; the system service is not started)"
	"turnutils_uclient|coturn|coturn's TURN test client and peer for the TURN tests (the coturn service is not started)"
)

# versitygw, the S3-compatible server the object store tests run
# (internal/s3test looks for it at this path; keep the version in step with
# s3test.Version). Built from source once, about 4-6 minutes cold; the
# binary is kept under the git-ignored bin/, so later runs skip it.
versitygw_version=v1.8.0
versitygw_bin="$repo_root/bin/versitygw-$versitygw_version/versitygw"

# The same, for `make lint` (--lint).
lint_needs=(
	"luac5.1|lua5.1|luac5.1 -p, to check that the Lua files parse as Lua 5.1, Redis's Lua"
	"luacheck|lua-check|luacheck, to lint the Lua files (the Redis queue store's scripts)"
)

have() {
	local check="$1"
	if [[ "$check" == /* ]]; then
		[[ -e "$check" ]]
	else
		command -v "$check" >/dev/null 2>&1
	fi
}

# install_packages installs the system packages of the needs given as
# arguments (entries as in system_needs) whose check fails.
install_packages() {
	local missing=() reasons=() names=() entry check pkgs why
	for entry in "$@"; do
		IFS='|' read -r check pkgs why <<<"$entry"
		names+=("$pkgs")
		if have "$check"; then
			continue
		fi
		# shellcheck disable=SC2206 # package lists are space-separated on purpose
		missing+=($pkgs)
		reasons+=("$pkgs ($why)")
	done

	if ((${#missing[@]} == 0)); then
		log "system packages: nothing to do (${names[*]} present)"
		return 0
	fi

	log "missing: ${reasons[*]}"
	if [[ "$(id -u)" != 0 ]]; then
		die "not root: cannot install ${missing[*]}. Run as root (e.g. sudo $0) or install them yourself: apt-get install ${missing[*]}"
	fi
	if ! command -v apt-get >/dev/null 2>&1; then
		die "apt-get not found: install ${missing[*]} with this system's package manager"
	fi

	export DEBIAN_FRONTEND=noninteractive
	log "apt-get update"
	apt-get update -q
	log "apt-get install ${missing[*]}"
	# Packages such as redis-server start a system service when installed:
	# the tests run their own private servers, so keep services from starting
	# (policy-rc.d exit 101 = "not allowed"), unless the admin has a policy.
	local policy=/usr/sbin/policy-rc.d added_policy=0
	if [[ ! -e "$policy" ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		added_policy=1
		# shellcheck disable=SC2064 # expand now: remove exactly this file
		trap "rm -f '$policy'" EXIT
	fi
	apt-get install -y -q --no-install-recommends "${missing[@]}"
	if ((added_policy)); then
		rm -f "$policy"
		trap - EXIT
	fi

	for entry in "$@"; do
		IFS='|' read -r check pkgs why <<<"$entry"
		have "$check" || die "$pkgs installed but $check is still missing"
	done
	log "installed: ${missing[*]}"
}

install_versitygw() {
	if [[ -x "$versitygw_bin" ]]; then
		log "versitygw: already built ($versitygw_bin)"
		return 0
	fi
	command -v go >/dev/null 2>&1 || die "go not found in PATH: cannot build versitygw"
	local dir tmp start
	dir="$(dirname "$versitygw_bin")"
	mkdir -p "$dir"
	# Build into a temporary directory beside it and rename, so that an
	# interrupted build never leaves a partial binary at the checked path.
	tmp="$(mktemp -d "$dir.tmp.XXXXXX")"
	# shellcheck disable=SC2064 # expand now: remove exactly this directory
	trap "rm -rf '$tmp'" EXIT
	log "go install github.com/versity/versitygw/cmd/versitygw@$versitygw_version -> $dir (a few minutes, once)"
	start=$SECONDS
	(cd "$repo_root" && GOBIN="$tmp" go install "github.com/versity/versitygw/cmd/versitygw@$versitygw_version")
	mv "$tmp/versitygw" "$versitygw_bin"
	rm -rf "$tmp"
	trap - EXIT
	log "versitygw: built in $((SECONDS - start)) s ($versitygw_bin)"
}

install_lint() {
	install_packages "${lint_needs[@]}"
	local bin="$repo_root/bin"
	if [[ -x "$bin/staticcheck" ]]; then
		log "staticcheck: already in $bin ($("$bin/staticcheck" -version 2>/dev/null || echo 'unknown version'))"
		return 0
	fi
	command -v go >/dev/null 2>&1 || die "go not found in PATH: cannot install staticcheck"
	mkdir -p "$bin"
	log "go install honnef.co/go/tools/cmd/staticcheck@latest -> $bin"
	(cd "$repo_root" && GOBIN="$bin" go install honnef.co/go/tools/cmd/staticcheck@latest)
	log "installed: $bin/staticcheck ($("$bin/staticcheck" -version 2>/dev/null || echo 'unknown version'))"
}

usage() {
	sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
}

case "${1:-}" in
"")
	install_packages "${system_needs[@]}"
	install_versitygw
	;;
--lint) install_lint ;;
-h | --help) usage ;;
*)
	usage >&2
	exit 2
	;;
esac
