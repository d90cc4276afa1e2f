#!/usr/bin/env bash
# The project's test command: every test of the three modules (the SDK,
# inbox and examples/receiver), run again each time (-count=1): a second
# run re-runs the tests rather than printing "(cached)".
# On a fresh Debian machine it installs what the tests need first: Debian's
# postgresql package, for the tests against a real Postgres (they start a
# throwaway server on loopback and stop it afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."

have_initdb() {
	command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

if ! have_initdb; then
	if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
		echo "== installing postgresql (initdb not found)"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq postgresql >/dev/null
	else
		echo "initdb not found and cannot install postgresql (needs root and apt-get):" >&2
		echo "the Postgres tests will skip; install Debian's postgresql package to run them" >&2
	fi
fi

# Two lanes at once: the SDK under the race detector, and inbox then
# examples/receiver, which share one build of River and SQLite. Most of a
# cold run is compiling, and the largest packages (SQLite's) compile on one
# processor, so the other lane keeps the second one busy. The race detector
# makes SQLite's pure-Go code several times slower, so inbox and the
# receiver run without it here; .ci/run runs them under it as well.
# The SDK runs with GOWORK=off: it needs nothing from the other modules, and
# so is tested with exactly the dependencies its go.mod gives a user.
# inbox and examples/receiver use go.work, which stands in for the versions
# of the SDK and inbox their go.mod files require.
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
lane() {
	local name=$1
	shift
	if "$@" >"$logs/$name" 2>&1; then echo 0 >"$logs/$name.rc"; else echo 1 >"$logs/$name.rc"; fi
}
lane sdk env GOWORK=off go test -race -count=1 ./... &
lane inbox bash -c 'cd inbox && go test -count=1 ./... && cd ../examples/receiver && go test -count=1 ./...' &
wait

status=0
for name in sdk inbox; do
	case $name in
	sdk) echo "== GOWORK=off go test -race -count=1 ./... (github.com/cakemail-go/webhooks)" ;;
	inbox) echo "== go test -count=1 ./... (inbox, then examples/receiver)" ;;
	esac
	cat "$logs/$name"
	[[ "$(cat "$logs/$name.rc")" == 0 ]] || status=1
done
exit "$status"
