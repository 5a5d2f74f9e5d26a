#!/usr/bin/env bash
# Load benchmark: the same fast upstream (an nginx worker answering a fixed WeCom JSON) measured
# (a) directly, (b) through nginx as a keep-alive reverse proxy, (c) through wecom-sidecar with
# token injection, a quota and metrics on; each proxy in two modes, run side by side and
# measured interleaved, ROUNDS times over:
#   logging: every call logged to a file (nginx `access_log FILE buffer=64k`; the sidecar at its
#            default log level, stderr to a file): the configuration users run;
#   silent:  nginx `access_log off`; the sidecar at WECOM_SIDECAR_LOG=warn.
# Same wrk settings for all; the upstream and wrk share core 0, the proxy under test runs alone
# on core 1 (one worker each), so figures are per core. Then, for the logging mode: latency at a
# fixed rate, RSS with 1,000 idle connections and after `wrk -c1000`; a two-worker run
# (TWO=0 skips it) and the storm bench (STORM=0 skips it).
#
#   bash benches/load.sh            # 10 s per run, 50 connections, 2 rounds
#   DURATION=30s CONNS=100 RATE=2000 ROUNDS=3 bash benches/load.sh   # RATE: the fixed-rate run
#   FIXED_ROUNDS=9 FIXED_SECS=10 bash benches/load.sh   # the fixed-rate rounds (default 5 of DURATION)
#
# Needs nginx and wrk (Debian: apt-get install nginx-light wrk); builds the release binary
# (BIN=path uses that build instead).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/setup.sh
DURATION=${DURATION:-10s}
CONNS=${CONNS:-50}
ROUNDS=${ROUNDS:-2}
RATE=${RATE:-2000}
FIXED_ROUNDS=${FIXED_ROUNDS:-5}
FIXED_SECS=${FIXED_SECS:-${DURATION%s}}
TWO=${TWO:-1}
STORM=${STORM:-1}
UP_PORT=${UP_PORT:-18601}
NGX_PORT=${NGX_PORT:-18602}
SC_PORT=${SC_PORT:-18603}
SC_ADMIN=${SC_ADMIN:-18604}
NGX_LOG_PORT=${NGX_LOG_PORT:-18605}
SC_LOG_PORT=${SC_LOG_PORT:-18606}
SC_LOG_ADMIN=${SC_LOG_ADMIN:-18607}
NGX2_PORT=${NGX2_PORT:-18608}
SC2_PORT=${SC2_PORT:-18609}
SC2_ADMIN=${SC2_ADMIN:-18610}
for tool in nginx wrk taskset; do
  command -v "$tool" >/dev/null || { echo "load.sh needs $tool" >&2; exit 1; }
done
if [ -z "${BIN:-}" ]; then
  BIN=./target/release/wecom-sidecar
  cargo build --release --bin wecom-sidecar >/dev/null 2>&1 || cargo build --release --bin wecom-sidecar
fi
bench_bin() { # name: the path of a harness-less bench binary, built
  local b; b=$(cargo bench --bench "$1" --no-run --message-format=json 2>/dev/null |
    grep -o "\"executable\":\"[^\"]*$1[^\"]*\"" | tail -1 | cut -d'"' -f4)
  [ -x "$b" ] || { echo "could not build benches/$1.rs" >&2; exit 1; }
  echo "$b"
}
fixed=$(bench_bin fixed_rate)
holder=$(bench_bin open_conns)
[ "$STORM" = 0 ] || storm=$(bench_bin storm)
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

sidecar() { # cpus dir port admin log-level ("" for the default): starts it, prints its pid
  mkdir -p "$2"
  write_sidecar_conf "$2" "$3" "$4" "$UP_PORT"
  if [ -n "$5" ]; then
    BENCH_SECRET=bench WECOM_SIDECAR_LOG=$5 taskset -c "$1" "$BIN" --config "$2/sidecar.yaml" >/dev/null 2>"$2/sidecar.log" &
  else
    (unset WECOM_SIDECAR_LOG; BENCH_SECRET=bench exec taskset -c "$1" "$BIN" --config "$2/sidecar.yaml" >/dev/null 2>"$2/sidecar.log") &
  fi
  echo $!
}

write_upstream_conf "$work" "$UP_PORT"
write_proxy_conf "$work/proxy.conf" "$NGX_PORT" 1 off "$UP_PORT"
write_proxy_conf "$work/proxy-log.conf" "$NGX_LOG_PORT" 1 "$work/nginx-access.log combined buffer=64k" "$UP_PORT"
taskset -c 0 nginx -c "$work/upstream.conf" -p "$work" & pids+=($!)
taskset -c 1 nginx -c "$work/proxy.conf" -p "$work" & pids+=($!)
taskset -c 1 nginx -c "$work/proxy-log.conf" -p "$work" & pids+=($!)
sc=$(sidecar 1 "$work/silent" "$SC_PORT" "$SC_ADMIN" warn); pids+=($sc)
scl=$(sidecar 1 "$work/logging" "$SC_LOG_PORT" "$SC_LOG_ADMIN" ""); pids+=($scl)
wait_up() { # port...
  local port
  for port in "$@"; do
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/" -o /dev/null 2>&1 && break; curl -sf "http://127.0.0.1:$port/readyz" -o /dev/null && break; sleep 0.1; done
  done
}
wait_up "$UP_PORT" "$NGX_PORT" "$NGX_LOG_PORT" "$SC_ADMIN" "$SC_LOG_ADMIN"

run() { # name url [cpus threads]: name|req/s|p50|p99
  local out; out=$(taskset -c "${3:-0}" wrk -t"${4:-1}" -c"$CONNS" -d"$DURATION" --latency "$2" 2>&1)
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  echo "$1|$rps|$p50|$p99"
}
path="/cgi-bin/user/get?userid=zhangsan"
targets=(direct "http://127.0.0.1:$UP_PORT$path"
  nginx-silent "http://127.0.0.1:$NGX_PORT$path"
  sidecar-silent "http://127.0.0.1:$SC_PORT$path"
  nginx-logging "http://127.0.0.1:$NGX_LOG_PORT$path"
  sidecar-logging "http://127.0.0.1:$SC_LOG_PORT$path")
rows=()
for round in $(seq "$ROUNDS"); do
  for ((i = 0; i < ${#targets[@]}; i += 2)); do
    rows+=("$round|$(run "${targets[i]}" "${targets[i + 1]}")")
  done
done
rss=$(awk '/VmHWM/ {print $2}' /proc/$scl/status)
lines_sidecar=$(grep -c ' access: call ' "$work/logging/sidecar.log" || true)
lines_nginx=$(wc -l < "$work/nginx-access.log")
fixed_run() { taskset -c 0 "$fixed" "$1" "$RATE" "$FIXED_SECS" 8; }
# FIXED_ROUNDS rounds of the three targets, each round in another order, so a noisy stretch of
# the machine's falls on all three alike; the figure is the median over rounds of each round's
# own difference (sidecar or nginx p99 minus direct p99 in that round).
fixed_urls=("direct|http://127.0.0.1:$UP_PORT$path" "nginx-logging|http://127.0.0.1:$NGX_LOG_PORT$path"
  "sidecar-logging|http://127.0.0.1:$SC_LOG_PORT$path")
fr=()
for round in $(seq "$FIXED_ROUNDS"); do
  for k in 0 1 2; do
    t=${fixed_urls[(k + round) % 3]}
    fr+=("$round|${t%%|*}|$(fixed_run "${t#*|}")")
  done
done
held() { # pid url: VmRSS of pid (kB) while 1000 keep-alive connections, each answered once, are open
  taskset -c 0 "$holder" "$2" 1000 3 >"$work/held.out" & local h=$!
  for _ in $(seq 100); do grep -q answered "$work/held.out" && break; sleep 0.1; done
  sleep 1; awk '/VmRSS/ {print $2}' "/proc/$1/status"; wait "$h"
  grep -q "answered=1000" "$work/held.out" || echo "open_conns: $(cat "$work/held.out")" >&2
}
# nginx's connections live in its one worker, the master's child.
held_b=$(held "$(pgrep -P "$(cat "$work/proxy-log.conf.pid")" | head -1)" "http://127.0.0.1:$NGX_LOG_PORT$path")
held_c=$(held "$scl" "http://127.0.0.1:$SC_LOG_PORT$path")
big=$(taskset -c 0 wrk -t1 -c1000 -d5s "http://127.0.0.1:$SC_LOG_PORT$path" 2>&1 | awk '/Requests\/sec/ {print $2}')
rss1000=$(awk '/VmHWM/ {print $2}' /proc/$scl/status)
calls=$(curl -s "http://127.0.0.1:$SC_LOG_ADMIN/metrics" | awk '/^wecom_api_request_duration_seconds_count/ && /api="user\/get"/ && /outcome="ok"/ {s += $2} END {print s}')
dropped=$(curl -s "http://127.0.0.1:$SC_LOG_ADMIN/metrics" | awk '/^wecom_log_lines_dropped_total/ {print $2}')

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  machine: $(nproc) cores, $(uname -m)  wrk -t1 -c$CONNS -d$DURATION, $ROUNDS rounds interleaved"
printf '%-6s %-16s %12s %10s %10s\n' round target "req/s" p50 p99
for row in "${rows[@]}"; do IFS='|' read -r r n q p5 p9 <<<"$row"; printf '%-6s %-16s %12s %10s %10s\n' "$r" "$n" "$q" "$p5" "$p9"; done
mean() { printf '%s\n' "${rows[@]}" | awk -F'|' -v t="$1" '$2==t {s += $3; n++} END {printf "%.0f", s/n}'; }
d=$(mean direct)
for mode in logging silent; do
  n=$(mean "nginx-$mode"); s=$(mean "sidecar-$mode")
  echo "$mode (mean of $ROUNDS): direct $d, nginx $n, sidecar $s req/s; sidecar/nginx $(awk -v s="$s" -v n="$n" 'BEGIN {printf "%.2f", s/n}'), sidecar/direct $(awk -v s="$s" -v d="$d" 'BEGIN {printf "%.2f", s/d}')"
done
echo "lines logged: sidecar $lines_sidecar, nginx $lines_nginx; sidecar lines dropped: ${dropped:-?}"
echo "sidecar (logging) peak RSS: $((rss / 1024)) MB at $CONNS connections, $((rss1000 / 1024)) MB after wrk -c1000 ($big req/s); calls answered ok by the upstream: $calls"
echo "RSS with 1000 open keep-alive connections (each answered once): sidecar $((held_c / 1024)) MB, nginx-proxy $((held_b / 1024)) MB"
field() { grep -o "$2=[^ ]*" <<<"$1" | cut -d= -f2; }
echo "fixed rate (logging mode): $RATE req/s for $FIXED_SECS s over 8 connections (open loop, timed from the due time), $FIXED_ROUNDS rounds interleaved"
printf '%-6s %-16s %10s %10s %10s %10s %8s %8s\n' round target p50 p90 p99 p99.9 errors behind
for row in "${fr[@]}"; do
  IFS='|' read -r r n line <<<"$row"
  printf '%-6s %-16s %10s %10s %10s %10s %8s %8s\n' "$r" "$n" "$(field "$line" p50_ms)ms" "$(field "$line" p90_ms)ms" \
    "$(field "$line" p99_ms)ms" "$(field "$line" p999_ms)ms" "$(field "$line" errors)" "$(field "$line" behind)"
done
median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
fq() { # target quantile: that quantile of each round, one per line
  for row in "${fr[@]}"; do IFS='|' read -r r n line <<<"$row"; if [ "$n" = "$1" ]; then field "$line" "$2"; fi; done
}
added() { # target: each round's p99 minus direct's in the same round
  paste <(fq "$1" p99_ms) <(fq direct p99_ms) | awk '{printf "%.3f\n", $1 - $2}'
}
echo "median of $FIXED_ROUNDS rounds: p50 direct $(fq direct p50_ms | median), nginx $(fq nginx-logging p50_ms | median), sidecar $(fq sidecar-logging p50_ms | median) ms; p99 direct $(fq direct p99_ms | median), nginx $(fq nginx-logging p99_ms | median), sidecar $(fq sidecar-logging p99_ms | median) ms"
echo "added p99 over direct (median of the rounds' differences): sidecar $(added sidecar-logging | median) ms, nginx $(added nginx-logging | median) ms"

if [ "$TWO" != 0 ]; then
  # One worker on core 1 against two on cores 0 and 1, both logging. wrk (2 threads) and the
  # upstream are not pinned: on 2 cores everything shares them, so the two-worker figure is
  # what a proxy gets when it competes with its load, not what it would do on cores of its own.
  write_proxy_conf "$work/proxy2.conf" "$NGX2_PORT" 2 "$work/nginx2-access.log combined buffer=64k" "$UP_PORT"
  taskset -c 0,1 nginx -c "$work/proxy2.conf" -p "$work" & pids+=($!)
  sc2=$(sidecar 0,1 "$work/two" "$SC2_PORT" "$SC2_ADMIN" ""); pids+=($sc2)
  wait_up "$NGX2_PORT" "$SC2_ADMIN"
  t=()
  for round in $(seq "$ROUNDS"); do
    t+=("$(run nginx-1w "http://127.0.0.1:$NGX_LOG_PORT$path" 0,1 2)")
    t+=("$(run nginx-2w "http://127.0.0.1:$NGX2_PORT$path" 0,1 2)")
    t+=("$(run sidecar-1t "http://127.0.0.1:$SC_LOG_PORT$path" 0,1 2)")
    t+=("$(run sidecar-2t "http://127.0.0.1:$SC2_PORT$path" 0,1 2)")
  done
  tmean() { printf '%s\n' "${t[@]}" | awk -F'|' -v n="$1" '$1==n {s += $2; c++} END {printf "%.0f", s/c}'; }
  echo "two workers (logging, wrk -t2 unpinned, mean of $ROUNDS):"
  for p in nginx sidecar; do
    if [ $p = nginx ]; then one=$(tmean nginx-1w); two=$(tmean nginx-2w); else one=$(tmean sidecar-1t); two=$(tmean sidecar-2t); fi
    echo "  $p: 1 worker $one req/s, 2 workers $two req/s, 2/1 $(awk -v a="$two" -v b="$one" 'BEGIN {printf "%.2f", a/b}')"
  done
fi

if [ "$STORM" != 0 ]; then
  echo "storm (benches/storm.rs, its own sidecar at warn, $BIN):"
  STORM_BIN=$BIN "$storm" 2>&1 | grep -E 'storm|slowloris' | sed 's/^/  /'
fi
