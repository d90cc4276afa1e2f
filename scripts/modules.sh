#!/usr/bin/env bash
# The repository's modules as a user gets them once they are published:
#
#   bash scripts/modules.sh check            # an outside module builds and runs against them; a copy of examples/receiver builds
#   bash scripts/modules.sh tidy             # go mod tidy in each module (go mod tidy ignores go.work)
#   bash scripts/modules.sh release vX.Y.Z   # the go.mod and go.work edits before tagging vX.Y.Z and inbox/vX.Y.Z
#
# check and tidy serve the tree from a file-based module proxy written by
# internal/modproxy, as the version the go.mod files require of it, ahead of
# proxy.golang.org, with GOWORK=off and a module cache of their own: the
# tree never enters your module cache under a release's name. See
# RELEASING.md.
set -euo pipefail
cd "$(dirname "$0")/.."

root=github.com/cakemail-go/webhooks
inbox=$root/inbox
modules=(. inbox examples/receiver)

fail() {
	echo "modules.sh: $*" >&2
	exit 1
}

# required GOMOD MODULE prints the version GOMOD requires of MODULE.
required() {
	awk -v m="$2" '$1 == m { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$1"
}

# version prints the version the modules require of each other, after
# checking the layout a published module needs: no replace directive in any
# go.mod, and one version for both modules everywhere.
version() {
	local m v
	for m in "${modules[@]}"; do
		if go mod edit -json "$m/go.mod" | grep -q '"Replace": \['; then
			fail "$m/go.mod has a replace directive: a module's replace directives are ignored where it is a dependency, so it would not build there; go.work covers work in the repository"
		fi
	done
	v=$(required inbox/go.mod "$root")
	[[ -n "$v" ]] || fail "inbox/go.mod does not require $root"
	[[ "$(required examples/receiver/go.mod "$root")" == "$v" && "$(required examples/receiver/go.mod "$inbox")" == "$v" ]] ||
		fail "examples/receiver/go.mod must require $root and $inbox at $v, as inbox/go.mod requires $root (bash scripts/modules.sh release $v)"
	echo "$v"
}

# serve writes the proxy into $scratch and points the go command at it.
serve() {
	local v=$1 host_cache
	host_cache="$(go env GOMODCACHE)/cache/download"
	go run ./internal/modproxy -o "$scratch/proxy" .="$v" inbox="$v"
	# The host's module cache is a proxy too (go help goproxy): what it
	# holds is not downloaded again.
	export GOWORK=off GOMODCACHE="$scratch/mod" GONOSUMDB="$root"
	export GOPROXY="file://$scratch/proxy,file://$host_cache,https://proxy.golang.org"
	# -trimpath: dependencies compiled from this throwaway module cache are
	# cached by module and version rather than by directory, so only the
	# first check on a machine compiles them.
	GOFLAGS="$(go env GOFLAGS) -mod=mod -modcacherw -trimpath"
	export GOFLAGS
}

outside_program='package main

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox"
)

// One signed delivery through the verifier into an inbox on SQLite, and
// its handler run: both modules, as a service uses them.
func main() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "outside")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	const secret = "outside-module-secret-0123456789"

	handled := make(chan webhooks.EventType, 1)
	router := webhooks.NewRouter()
	router.OnUnhandled(func(ctx context.Context, e *webhooks.Event) error {
		select {
		case handled <- e.Type:
		default:
		}
		return nil
	})
	ib, err := inbox.Open(ctx, "sqlite://"+filepath.Join(dir, "inbox.db"), router)
	if err != nil {
		log.Fatal(err)
	}
	verifier, err := webhooks.NewVerifier([]string{secret})
	if err != nil {
		log.Fatal(err)
	}
	if err := ib.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer ib.Stop(ctx)

	body := fmt.Appendf(nil, `{"event":"Email.Opened","account_id":1,"created_on":%d,"data":{"email":"a@example.com"}}`, time.Now().Unix())
	req := httptest.NewRequest(http.MethodPost, "/webhooks/cakemail", bytes.NewReader(body))
	req.Header.Set(webhooks.SignatureHeader, webhooks.Sign(body, secret))
	w := httptest.NewRecorder()
	verifier.Middleware(ib).ServeHTTP(w, req)
	if w.Code != http.StatusAccepted {
		log.Fatalf("the delivery was answered %d: %s", w.Code, w.Body)
	}
	select {
	case e := <-handled:
		fmt.Println("outside module: delivery acknowledged and handled:", e)
	case <-time.After(time.Minute):
		log.Fatal("the delivery was acknowledged but never handled")
	}
}
'

check() {
	local v out receiver
	v=$(version)
	serve "$v"

	echo "-- an outside module: go get $inbox@$v, then build and run a program using both modules"
	out="$scratch/outside"
	mkdir -p "$out"
	printf 'module example.com/outside\n\ngo 1.26.0\n' >"$out/go.mod"
	printf '%s' "$outside_program" >"$out/main.go"
	(
		cd "$out"
		go get "$inbox@$v"
		go build -o "$scratch/bin/outside" .
		# What was built is the proxy's, at $v, without a replace.
		go list -m -f '{{.Path}} {{.Version}} {{.Replace}} {{.Dir}}' "$root" "$inbox" | while read -r path got replace dir; do
			[[ "$got" == "$v" && "$replace" == "<nil>" && "$dir" == "$GOMODCACHE"/* ]] ||
				fail "$path resolved to $got (replace $replace, in $dir), not $v from the proxy"
			echo "$path $got"
		done
		# The modules' own tests compile against each other as published
		# (inbox's reach the root module's internal helpers).
		go vet "$root/..." "$inbox/..."
	)
	"$scratch/bin/outside"

	echo "-- a copy of examples/receiver, outside the repository and its go.work"
	receiver="$scratch/receiver"
	cp -R examples/receiver "$receiver"
	(
		cd "$receiver"
		go build -o "$scratch/bin/receiver" .
		go vet ./...
	)
	echo "ok: $root@$v and $inbox@$v build as published"
}

tidy() {
	local v m
	v=$(version)
	serve "$v"
	for m in "${modules[@]}"; do
		(cd "$m" && go mod tidy)
	done
	# The proxy's checksums are the tree's, not the release's: inside the
	# repository go.work stands in for the modules, so no go.sum holds them.
	for m in inbox examples/receiver; do
		sed -i "\\#^${root}[ /]#d" "$m/go.sum"
	done
	echo "tidied ${modules[*]} against $root@$v and $inbox@$v served from the tree"
}

release() {
	local v=${1:-} old
	[[ "$v" =~ ^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$ ]] || fail "release needs a version vX.Y.Z, not '${v}'"
	old=$(version)
	(cd inbox && go mod edit -require="$root@$v")
	(cd examples/receiver && go mod edit -require="$root@$v" -require="$inbox@$v")
	# Until the tags are pushed, go.work stands in for the versions the
	# go.mod files now require.
	go work edit -dropreplace="$root@$old" -dropreplace="$inbox@$old" -replace="$root@$v=./" -replace="$inbox@$v=./inbox"
	check
	cat <<EOF
Now commit ("Release $v"), let .ci/run pass on that commit, then tag it, root first:
  git tag -a $v -m "Release $v" && git push origin $v
  git tag -a inbox/$v -m "Release inbox/$v" && git push origin inbox/$v
(RELEASING.md)
EOF
}

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

case "${1:-}" in
check) check ;;
tidy) tidy ;;
release) release "${2:-}" ;;
*)
	echo "usage: bash scripts/modules.sh check | tidy | release vX.Y.Z" >&2
	exit 2
	;;
esac
