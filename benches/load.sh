#!/usr/bin/env bash
# Load benchmark: the same fast upstream (an nginx worker answering a fixed WeCom JSON) measured
# (a) directly, (b) through nginx as a keep-alive reverse proxy, (c) through wecom-sidecar with
# token injection, a quota and metrics on. Same wrk settings for all; the upstream and wrk share
# core 0, the proxy under test runs alone on core 1 (one worker each), so figures are per core.
#
#   bash benches/load.sh            # 10 s per run, 50 connections
#   DURATION=30s CONNS=100 RATE=2000 bash benches/load.sh   # RATE: the fixed-rate latency run
#
# Needs nginx and wrk (Debian: apt-get install nginx-light wrk); builds the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/setup.sh
DURATION=${DURATION:-10s}
CONNS=${CONNS:-50}
UP_PORT=${UP_PORT:-18601}
NGX_PORT=${NGX_PORT:-18602}
SC_PORT=${SC_PORT:-18603}
SC_ADMIN=${SC_ADMIN:-18604}
for tool in nginx wrk taskset; do
  command -v "$tool" >/dev/null || { echo "load.sh needs $tool" >&2; exit 1; }
done
cargo build --release --bin wecom-sidecar >/dev/null 2>&1 || cargo build --release --bin wecom-sidecar
bench_bin() { # name: the path of a harness-less bench binary, built
  local b; b=$(cargo bench --bench "$1" --no-run --message-format=json 2>/dev/null |
    grep -o "\"executable\":\"[^\"]*$1[^\"]*\"" | tail -1 | cut -d'"' -f4)
  [ -x "$b" ] || { echo "could not build benches/$1.rs" >&2; exit 1; }
  echo "$b"
}
fixed=$(bench_bin fixed_rate)
holder=$(bench_bin open_conns)
RATE=${RATE:-2000}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

write_upstream_conf "$work" "$UP_PORT"
cat > "$work/proxy.conf" <<CONF
worker_processes 1; daemon off; pid $work/px.pid; error_log $work/px.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream up { server 127.0.0.1:$UP_PORT; keepalive 256; }
  server { listen 127.0.0.1:$NGX_PORT;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
write_sidecar_conf "$work" "$SC_PORT" "$SC_ADMIN" "$UP_PORT"

taskset -c 0 nginx -c "$work/upstream.conf" -p "$work" & pids+=($!)
taskset -c 1 nginx -c "$work/proxy.conf" -p "$work" & pids+=($!)
BENCH_SECRET=bench WECOM_SIDECAR_LOG=warn taskset -c 1 ./target/release/wecom-sidecar --config "$work/sidecar.yaml" 2>"$work/sidecar.log" & sc=$!; pids+=($sc)
for port in $UP_PORT $NGX_PORT $SC_ADMIN; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/" -o /dev/null 2>&1 && break; curl -sf "http://127.0.0.1:$port/readyz" -o /dev/null && break; sleep 0.1; done
done

run() { # name url
  local out; out=$(taskset -c 0 wrk -t1 -c"$CONNS" -d"$DURATION" --latency "$2" 2>&1)
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  echo "$1|$rps|$p50|$p99"
}
path="/cgi-bin/user/get?userid=zhangsan"
a=$(run direct "http://127.0.0.1:$UP_PORT$path")
b=$(run nginx-proxy "http://127.0.0.1:$NGX_PORT$path")
c=$(run wecom-sidecar "http://127.0.0.1:$SC_PORT$path")
rss=$(awk '/VmHWM/ {print $2}' /proc/$sc/status)
fixed_run() { taskset -c 0 "$fixed" "$1" "$RATE" "${DURATION%s}" 8; }
fa=$(fixed_run "http://127.0.0.1:$UP_PORT$path")
fb=$(fixed_run "http://127.0.0.1:$NGX_PORT$path")
fc=$(fixed_run "http://127.0.0.1:$SC_PORT$path")
held() { # pid url: VmRSS of pid (kB) while 1000 keep-alive connections, each answered once, are open
  taskset -c 0 "$holder" "$2" 1000 3 >"$work/held.out" & local h=$!
  for _ in $(seq 100); do grep -q answered "$work/held.out" && break; sleep 0.1; done
  sleep 1; awk '/VmRSS/ {print $2}' "/proc/$1/status"; wait "$h"
  grep -q "answered=1000" "$work/held.out" || echo "open_conns: $(cat "$work/held.out")" >&2
}
# nginx's connections live in its one worker, the master's child.
held_b=$(held "$(pgrep -P "$(cat "$work/px.pid")" | head -1)" "http://127.0.0.1:$NGX_PORT$path")
held_c=$(held "$sc" "http://127.0.0.1:$SC_PORT$path")
big=$(taskset -c 0 wrk -t1 -c1000 -d5s "http://127.0.0.1:$SC_PORT$path" 2>&1 | awk '/Requests\/sec/ {print $2}')
rss1000=$(awk '/VmHWM/ {print $2}' /proc/$sc/status)
calls=$(curl -s "http://127.0.0.1:$SC_ADMIN/metrics" | awk '/^wecom_api_request_duration_seconds_count/ && /api="user\/get"/ && /outcome="ok"/ {s += $2} END {print s}')

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  machine: $(nproc) cores, $(uname -m)  wrk -t1 -c$CONNS -d$DURATION"
printf '%-14s %12s %10s %10s\n' target "req/s" p50 p99
for row in "$a" "$b" "$c"; do IFS='|' read -r n r p5 p9 <<<"$row"; printf '%-14s %12s %10s %10s\n' "$n" "$r" "$p5" "$p9"; done
ra=$(cut -d'|' -f2 <<<"$a"); rb=$(cut -d'|' -f2 <<<"$b"); rc=$(cut -d'|' -f2 <<<"$c")
echo "ratio sidecar/nginx-proxy: $(awk -v c="$rc" -v b="$rb" 'BEGIN {printf "%.2f", c/b}')   sidecar/direct: $(awk -v c="$rc" -v a="$ra" 'BEGIN {printf "%.2f", c/a}')"
echo "sidecar peak RSS: $((rss / 1024)) MB at $CONNS connections, $((rss1000 / 1024)) MB after wrk -c1000 ($big req/s); calls answered ok by the upstream: $calls"
echo "RSS with 1000 open keep-alive connections (each answered once): sidecar $((held_c / 1024)) MB, nginx-proxy $((held_b / 1024)) MB"
field() { grep -o "$2=[^ ]*" <<<"$1" | cut -d= -f2; }
echo "fixed rate: $RATE req/s for ${DURATION%s} s over 8 connections (open loop, timed from the due time)"
printf '%-14s %10s %10s %10s %10s %8s\n' target p50 p90 p99 p99.9 errors
for row in "direct|$fa" "nginx-proxy|$fb" "wecom-sidecar|$fc"; do
  n=${row%%|*}; r=${row#*|}
  printf '%-14s %10s %10s %10s %10s %8s\n' "$n" "$(field "$r" p50_ms)ms" "$(field "$r" p90_ms)ms" "$(field "$r" p99_ms)ms" "$(field "$r" p999_ms)ms" "$(field "$r" errors)"
done
echo "added p99 over direct: sidecar $(awk -v c="$(field "$fc" p99_ms)" -v a="$(field "$fa" p99_ms)" 'BEGIN {printf "%.3f", c-a}') ms, nginx $(awk -v b="$(field "$fb" p99_ms)" -v a="$(field "$fa" p99_ms)" 'BEGIN {printf "%.3f", b-a}') ms"
