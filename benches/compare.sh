#!/usr/bin/env bash
# Builds side by side: each sidecar binary given (at its default log level, every call logged)
# and nginx as a keep-alive reverse proxy logging to a file (`access_log … buffer=64k`), all in
# front of the same fast upstream, measured interleaved with `wrk -t1 -c$C` for ROUNDS rounds.
# The proxies run on core 1, the upstream and wrk on core 0 (as in benches/load.sh). Prints
# each one's mean req/s and its ratio to nginx. For telling two builds apart on a noisy
# machine: they meet the same noise, round by round. Also prints each proxy's CPU time per
# request, user and kernel apart (from /proc/PID/stat around each run): where the time goes.
#
#   bash benches/compare.sh OLD_BIN NEW_BIN                    # 3 rounds of 5 s
#   ROUNDS=5 DURATION=10s bash benches/compare.sh A B C
#   LOG=warn bash benches/compare.sh OLD_BIN NEW_BIN           # silent: the sidecars at warn,
#                                                              # nginx with access_log off
#
# Needs nginx, wrk and taskset.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/setup.sh
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-50}
UP_PORT=${UP_PORT:-18801}
NGX_PORT=${NGX_PORT:-18802}
[ $# -gt 0 ] || { echo "usage: compare.sh BIN..." >&2; exit 2; }
for tool in nginx wrk taskset; do
  command -v "$tool" >/dev/null || { echo "compare.sh needs $tool" >&2; exit 1; }
done
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
write_upstream_conf "$work" "$UP_PORT"
LOG=${LOG:-}
if [ "$LOG" = warn ]; then
  ngx_log=off mode="silent (sidecars at warn, nginx access_log off)"
else
  ngx_log="$work/nginx-access.log combined buffer=64k" mode="logging (every call logged)"
fi
write_proxy_conf "$work/proxy.conf" "$NGX_PORT" 1 "$ngx_log" "$UP_PORT"
taskset -c 0 nginx -c "$work/upstream.conf" -p "$work" & pids+=($!)
taskset -c 1 nginx -c "$work/proxy.conf" -p "$work" & pids+=($!)
ngx_master=$!
names=(nginx)
urls=("http://127.0.0.1:$NGX_PORT")
procs=(0) # the process whose CPU time is read, per proxy (nginx's worker: found once it runs)
i=0
for bin in "$@"; do
  i=$((i + 1))
  port=$((NGX_PORT + 10 + 2 * i))
  mkdir -p "$work/s$i"
  write_sidecar_conf "$work/s$i" "$port" $((port + 1)) "$UP_PORT"
  (if [ -n "$LOG" ]; then export WECOM_SIDECAR_LOG=$LOG; else unset WECOM_SIDECAR_LOG; fi
   BENCH_SECRET=bench exec taskset -c 1 "$bin" --config "$work/s$i/sidecar.yaml" >/dev/null 2>"$work/s$i/sidecar.log") &
  pids+=($!)
  procs+=($!)
  names+=("$i:$(basename "$bin")")
  urls+=("http://127.0.0.1:$port")
done
path="/cgi-bin/user/get?userid=zhangsan"
for u in "${urls[@]}"; do
  for _ in $(seq 100); do curl -sf "$u$path" -o /dev/null && break; sleep 0.2; done
done
procs[0]=$(pgrep -P "$ngx_master" | head -1)
# User and kernel CPU time of a process, in clock ticks.
cpu() { awk '{print $14, $15}' "/proc/$1/stat"; }
declare -A sum calls user sys
for round in $(seq "$ROUNDS"); do
  for k in "${!urls[@]}"; do
    read -r u0 s0 < <(cpu "${procs[k]}")
    out=$(taskset -c 0 wrk -t1 -c"$CONNS" -d"$DURATION" "${urls[k]}$path")
    read -r u1 s1 < <(cpu "${procs[k]}")
    q=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    echo "round $round  ${names[k]}  $q req/s"
    sum[$k]=$(awk -v a="${sum[$k]:-0}" -v b="$q" 'BEGIN {print a + b}')
    calls[$k]=$((${calls[$k]:-0} + n))
    user[$k]=$((${user[$k]:-0} + u1 - u0))
    sys[$k]=$((${sys[$k]:-0} + s1 - s0))
  done
done
hz=$(getconf CLK_TCK)
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  wrk -t1 -c$CONNS -d$DURATION, $ROUNDS rounds interleaved, $mode"
echo "  proxy                            req/s  ratio  CPU per request: user, kernel (us)"
for k in "${!urls[@]}"; do
  awk -v n="${names[k]}" -v s="${sum[$k]}" -v r="$ROUNDS" -v g="${sum[0]}" \
    -v c="${calls[$k]}" -v u="${user[$k]}" -v k="${sys[$k]}" -v hz="$hz" \
    'BEGIN {printf "  %-28s %8.0f  %.3f  %5.1f  %5.1f\n", n, s / r, s / g, u / hz * 1e6 / c, k / hz * 1e6 / c}'
done
