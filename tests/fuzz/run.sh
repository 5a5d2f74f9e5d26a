#!/usr/bin/env bash
# Fuzzes every target under tests/fuzz for a bounded time (README "Fuzzing").
#
#   bash tests/fuzz/run.sh                          # 20 s per target
#   FUZZ_SECONDS=600 bash tests/fuzz/run.sh         # a longer run: 10 min per target
#   FUZZ_TARGETS="query body" bash tests/fuzz/run.sh   # some targets only
#
# Installs cargo-fuzz if missing, builds all targets once (no sanitizer: the code under test is
# safe Rust, and AddressSanitizer would need a nightly compiler; this build works on stable),
# then runs each from a scratch corpus (tests/fuzz/corpus/<target>, seeded from
# tests/fuzz/seeds/<target>; FUZZ_CORPUS=DIR puts it elsewhere). The committed seeds are never
# written to. Exits non-zero when a target fails: the input is saved under
# tests/fuzz/artifacts/<target>/, and `cargo fuzz run --fuzz-dir tests/fuzz --sanitizer none
# <target> <file>` replays it.
set -euo pipefail
cd "$(dirname "$0")/../.."

fuzz_dir=tests/fuzz
seconds=${FUZZ_SECONDS:-20}
corpus_root=${FUZZ_CORPUS:-$fuzz_dir/corpus}
flags=(--fuzz-dir "$fuzz_dir" --sanitizer none)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

targets=${FUZZ_TARGETS:-$(cargo fuzz list --fuzz-dir "$fuzz_dir")}

start=$(date +%s)
cargo fuzz build "${flags[@]}"
echo "fuzz: built in $(($(date +%s) - start)) s"

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=()
summary=()
for t in $targets; do
  corpus="$corpus_root/$t"
  mkdir -p "$corpus"
  cp -f "$fuzz_dir/seeds/$t/"* "$corpus/"
  if [ "$t" = config ]; then
    # The shipped configs as they are now, besides the committed copies.
    for f in conf/*.yaml; do cp -f "$f" "$corpus/conf-$(basename "$f")"; done
  fi
  args=(-max_total_time="$seconds" -timeout=30 -print_final_stats=1)
  if [ -f "$fuzz_dir/dicts/$t.dict" ]; then
    args+=(-dict="$fuzz_dir/dicts/$t.dict")
  fi
  echo "fuzz: $t for $seconds s"
  if cargo fuzz run "${flags[@]}" "$t" "$corpus" -- "${args[@]}" >"$logs/$t" 2>&1; then
    result=ok
  else
    result=FAILED
    failed+=("$t")
    tail -n 60 "$logs/$t"
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$t" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$logs/$t" | tail -n 1 || true)
  summary+=("$(printf '%-8s %-6s %10s runs %8s exec/s  %s  corpus %s files' \
    "$t" "$result" "${runs:-?}" "${rate:-?}" "${cov:-cov: ?}" "$(ls "$corpus" | wc -l)")")
done

printf 'fuzz: %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in $fuzz_dir/artifacts/<target>/)" >&2
  exit 1
fi
echo "fuzz: all targets passed"
