#!/usr/bin/env bash
# Mutation testing with cargo-mutants (README "Testing"): does some test fail when the code is
# changed? Unit tests only (`cargo test --lib`); exclusions and their reasons are in
# .cargo/mutants.toml.
#
#   bash tests/mutants.sh                        # the full pass over the core modules (an hour or more)
#   bash tests/mutants.sh src/retry.rs           # some files only
#   bash tests/mutants.sh --diff [BASE]          # the lines a change touches (what .ci/run does)
#
# The full pass works on a copy of the tree (cargo-mutants' default; the first build there
# builds the dependencies again); MUTANTS_IN_PLACE=1 mutates this tree instead, faster but it
# must not be interrupted with kill -9 (Ctrl-C restores the file). Results: mutants.out/.
#
# --diff: the change is `git diff BASE` of src/, where BASE is the argument, else
# $MUTANTS_BASE, else the merge-base with origin/main when HEAD is not origin/main, else HEAD~1
# (a landing of main: its last commit, or for a merge every commit it brought in). Bounded:
# MUTANTS_SECONDS (default 300) for the whole run, MUTANTS_TIMEOUT (default 60) per test run
# and MUTANTS_BUILD_TIMEOUT (default 180) per build. A
# missed mutant fails; running out of time prints the mutants not reached and does not.
set -euo pipefail
cd "$(dirname "$0")/.."

# The modules the issue's table and README "Testing" name.
# (Message recipients are counted in src/quota/mod.rs.)
CORE=(
  src/quota/window.rs src/quota/mod.rs src/quota/blocks.rs src/quota/day.rs
  src/quota/per_day.rs src/quota/in_flight.rs src/retry.rs src/token/store.rs
  src/token/bounds.rs src/upstream/health.rs src/upstream/split.rs src/proxy/admission.rs
  src/fleet/mod.rs src/fleet/quota.rs src/fleet/per_day.rs src/signing.rs
  src/redact/redactor.rs src/redact/known.rs src/redact/call.rs src/redact/query.rs
  src/wecom/errcode.rs src/wecom/apis.rs
)
per_mutant=${MUTANTS_TIMEOUT:-60}
common=(--timeout "$per_mutant" --build-timeout "${MUTANTS_BUILD_TIMEOUT:-180}" --cargo-arg=--lib --no-shuffle)
# MUTANTS_BASELINE=skip: the unit tests just passed (.ci/run runs this after them), so the
# unmutated run is not repeated.
[ "${MUTANTS_BASELINE:-run}" = skip ] && common+=(--baseline=skip)

if ! cargo mutants --version >/dev/null 2>&1; then
  echo "mutants: installing cargo-mutants 27.1.0"
  cargo install cargo-mutants --version 27.1.0 --locked
fi

if [ "${1:-}" != "--diff" ]; then
  files=("$@")
  [ ${#files[@]} -gt 0 ] || files=("${CORE[@]}")
  args=()
  for f in "${files[@]}"; do args+=(--file "$f"); done
  [ "${MUTANTS_IN_PLACE:-0}" = 1 ] && args+=(--in-place)
  exec cargo mutants "${common[@]}" "${args[@]}"
fi

base=${2:-${MUTANTS_BASE:-}}
if [ -z "$base" ]; then
  if git rev-parse -q --verify origin/main >/dev/null &&
    [ "$(git rev-parse HEAD)" != "$(git rev-parse origin/main)" ]; then
    base=$(git merge-base HEAD origin/main)
  elif git rev-parse -q --verify HEAD~1 >/dev/null; then
    base=HEAD~1
  else
    echo "mutants: no earlier commit to compare with; nothing to do"
    exit 0
  fi
fi
if ! git diff --quiet -- src; then
  echo "mutants: src/ has changes not committed; --diff mutates the tree in place, so commit or stash them first" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Source of the sidecar only: its tests, the simulator and the fuzz targets are not mutated.
git diff "$base" -- src ':(exclude)src/**/tests/*' >"$work/change.diff"
if [ ! -s "$work/change.diff" ]; then
  echo "mutants: the change ($base..HEAD) touches no code under src/; nothing to do"
  exit 0
fi
cargo mutants --list --in-diff "$work/change.diff" >"$work/all.txt"
echo "mutants: $(wc -l <"$work/all.txt") mutants in the lines $base..HEAD changes"
[ -s "$work/all.txt" ] || exit 0

seconds=${MUTANTS_SECONDS:-300}
rc=0
# In place, stopped with SIGINT (cargo-mutants puts the file back), then SIGKILL 60 s later.
timeout -s INT -k 60 "$seconds" cargo mutants "${common[@]}" --in-place \
  --in-diff "$work/change.diff" --output "$work" || rc=$?
if ! git diff --quiet -- src; then
  echo "mutants: a mutated file was left behind; restoring src/ from git" >&2
  git checkout -- src
fi
out="$work/mutants.out"
missed=$(cat "$out/missed.txt" 2>/dev/null || true)
if [ -n "$missed" ]; then
  echo "mutants: MISSED (no unit test fails with these changes; add a test that does, or an"
  echo "         exclusion with its reason in .cargo/mutants.toml):"
  echo "$missed" | sed 's/^/  /'
  exit 1
fi
case $rc in
  0 | 3) echo "mutants: every mutant of the change was caught or unviable" ;; # 3: some timed out: caught
  124 | 130 | 137)
    reached=$(cat "$out"/caught.txt "$out"/timeout.txt "$out"/unviable.txt 2>/dev/null | sort -u)
    echo "mutants: out of time after ${seconds}s; not reached:"
    sort -u "$work/all.txt" | comm -23 - <(echo "$reached") | sed 's/^/  /'
    ;;
  *)
    echo "mutants: cargo-mutants failed (exit $rc)" >&2
    exit "$rc"
    ;;
esac
