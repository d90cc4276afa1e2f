#!/usr/bin/env bash
# The project's test command: every test of the three modules (the SDK,
# inbox and examples/receiver).
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
		echo "the receiver's Postgres tests will skip; install Debian's postgresql package to run them" >&2
	fi
fi

echo "== go test -race ./... (github.com/cakemail-go/webhooks)"
go test -race ./...

echo "== go test -race ./... (inbox)"
(cd inbox && go test -race ./...)

echo "== go test -race ./... (examples/receiver)"
(cd examples/receiver && go test -race ./...)
