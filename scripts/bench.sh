#!/usr/bin/env bash
# The benchmarks behind the README's performance figures: signatures, the API
# client, and examples/receiver's durable acknowledgements (SQLite, Postgres,
# and the in-memory receiver it replaced).
#
# .ci/run sets BENCH_SMOKE=1 to run each benchmark once, which proves they all
# still run without spending minutes measuring; figures need the default.
set -euo pipefail
cd "$(dirname "$0")/.."

count=6 benchtime=1s receiver_benchtime=3s
if [[ "${BENCH_SMOKE:-}" == 1 ]]; then
	count=1 benchtime=1x receiver_benchtime=1x
fi

go test -run '^$' -bench 'Signature' -benchmem -count "$count" -benchtime "$benchtime" .
go test -run '^$' -bench 'BenchmarkGet|BenchmarkAll' -benchmem -count "$count" -benchtime "$benchtime" .
(cd examples/receiver && go test -run '^$' -bench . -benchtime "$receiver_benchtime")
