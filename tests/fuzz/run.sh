#!/usr/bin/env bash
# Runs the fuzz targets (cargo fuzz, libFuzzer, on the stable toolchain: no sanitizer).
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]     default: 30 s each, every target
#
# Corpora start from tests/fuzz/seeds/<target> and the repository's fixtures (manifests
# from policies/, the embedded default configuration) and grow in tests/fuzz/corpus/
# (not committed). Exits non-zero on the first crash, leaving the input in
# tests/fuzz/artifacts/<target>/; a crash found becomes a regression test.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
seconds=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(review manifest config model)

cd "$root"
cargo fuzz build --fuzz-dir tests/fuzz --sanitizer none --release

seed() {
  local target=$1 dir=$here/corpus/$1
  mkdir -p "$dir"
  cp -n "$here/seeds/$target/"* "$dir/" 2>/dev/null || true
  case $target in
    manifest)
      find policies charts/netpol-guard/templates -name '*.yaml' -print0 |
        while IFS= read -r -d '' f; do cp -n "$f" "$dir/$(echo "$f" | tr / _)"; done ;;
    config) cp -n crates/netpol-guard-core/src/default-config.yaml "$dir/default-config.yaml" ;;
  esac
}

for target in "${targets[@]}"; do
  seed "$target"
  mkdir -p "$here/artifacts/$target"
  echo "== $target: ${seconds}s"
  # -max_len: a review or manifest of 256 KiB covers every code path; bigger inputs are
  # the business of the size limits, tested on their own
  "$here/target/x86_64-unknown-linux-gnu/release/$target" \
    -max_total_time="$seconds" -max_len=262144 -timeout=20 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$here/artifacts/$target/" \
    "$here/corpus/$target" 2>&1 |
    grep -E '^(#[0-9]+.*(DONE|pulse)|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb|==[0-9]+== ERROR|SUMMARY|.*panicked at|Done )' || true
  # libFuzzer's status is lost in the pipe: a crash leaves an artifact
  if compgen -G "$here/artifacts/$target/*" > /dev/null; then
    echo "fuzz target $target crashed: $(ls "$here/artifacts/$target")" >&2
    exit 1
  fi
done
