#!/usr/bin/env bash
# The benchmarks behind the README's performance figures: signatures and
# their diagnosis, the API client, and package inbox's durable receiving
# (acknowledged/s, processed/s and acknowledgement latency, on SQLite and
# Postgres).
#
# .ci/run sets BENCH_SMOKE=1 to run each benchmark once, which proves they all
# still run without spending minutes measuring; figures need the default.
set -euo pipefail
cd "$(dirname "$0")/.."

count=6 benchtime=1s inbox_flags=()
if [[ "${BENCH_SMOKE:-}" == 1 ]]; then
	# -short: a burst of 1,000 deliveries instead of 10,000.
	count=1 benchtime=1x inbox_flags=(-short)
fi

go test -run '^$' -bench 'Signature|Diagnose' -benchmem -count "$count" -benchtime "$benchtime" .
go test -run '^$' -bench 'BenchmarkGet|BenchmarkAll' -benchmem -count "$count" -benchtime "$benchtime" .
(cd inbox && go test -run '^$' -bench . -benchtime 1x "${inbox_flags[@]}")
