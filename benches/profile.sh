#!/usr/bin/env bash
# Instructions per call: the release sidecar under callgrind in front of a fast upstream (one
# nginx worker answering a fixed WeCom JSON), warmed up, then SECS seconds of `wrk -c10` with
# instrumentation on. Prints calls, instructions and instructions per call, and leaves the
# profile for `callgrind_annotate` (add --inclusive=yes or --tree=caller).
#
#   bash benches/profile.sh            # 10 s
#   SECS=20 bash benches/profile.sh
#   LOG=info bash benches/profile.sh   # the default log level (the access line on); default warn
#   BIN=/path/to/wecom-sidecar bash benches/profile.sh   # another build (not rebuilt)
#   CALLGRIND_ARGS=--dump-instr=yes bash benches/profile.sh   # more callgrind options (per instruction)
#
# Needs valgrind, objcopy, nginx and wrk (Debian: apt-get install valgrind binutils nginx-light wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/setup.sh
SECS=${SECS:-10}
UP_PORT=${UP_PORT:-18701}
SC_PORT=${SC_PORT:-18703}
SC_ADMIN=${SC_ADMIN:-18704}
for tool in valgrind callgrind_control callgrind_annotate objcopy nginx wrk; do
  command -v "$tool" >/dev/null || { echo "profile.sh needs $tool" >&2; exit 1; }
done
LOG=${LOG:-warn}
if [ -z "${BIN:-}" ]; then
  BIN=./target/release/wecom-sidecar
  cargo build --release --bin wecom-sidecar >/dev/null 2>&1 || cargo build --release --bin wecom-sidecar
fi
work=$(mktemp -d /tmp/wecom-profile.XXXXXX)
# valgrind 3.19 cannot read the debug info this toolchain writes ("Missing or invalid ELF
# Section Header Table") and then names no function at all: profile a copy without it (the
# symbol table stays, so the profile names every function; the instructions are the same).
objcopy --strip-debug "$BIN" "$work/wecom-sidecar"
BIN=$work/wecom-sidecar
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

write_upstream_conf "$work" "$UP_PORT"
write_sidecar_conf "$work" "$SC_PORT" "$SC_ADMIN" "$UP_PORT"

nginx -c "$work/upstream.conf" -p "$work" & pids+=($!)
BENCH_SECRET=bench WECOM_SIDECAR_LOG=$LOG valgrind --tool=callgrind --instr-atstart=no ${CALLGRIND_ARGS:-} \
  --callgrind-out-file="$work/callgrind.out" "$BIN" \
  --config "$work/sidecar.yaml" 2>"$work/sidecar.log" & sc=$!; pids+=($sc)
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$SC_ADMIN/readyz" -o /dev/null && break; sleep 0.2; done
url="http://127.0.0.1:$SC_PORT/cgi-bin/user/get?userid=zhangsan"
wrk -t1 -c10 -d3s "$url" >/dev/null # warm-up, not instrumented
calls() {
  curl -s "http://127.0.0.1:$SC_ADMIN/metrics" |
    awk '/^wecom_api_request_duration_seconds_count/ && /api="user\/get"/ {s += $2} END {print s + 0}'
}
before=$(calls)
callgrind_control -i on "$sc" >/dev/null 2>&1
wrk -t1 -c10 -d"${SECS}s" "$url" | grep 'Requests/sec'
callgrind_control -i off "$sc" >/dev/null 2>&1
after=$(calls)
callgrind_control -d "$sc" >/dev/null 2>&1
sleep 1
profile="$work/callgrind.out.1"
total=$(callgrind_annotate "$profile" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
n=$((after - before))
echo "calls: $n  instructions: $total  per call: $((total / n))"
echo "profile: $profile   (callgrind_annotate --inclusive=yes $profile | less)"
