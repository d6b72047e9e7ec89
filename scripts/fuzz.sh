#!/usr/bin/env bash
# Long fuzzing runs of the libFuzzer targets (ASan/UBSan): the manifest parser with context
# expansion, the kernel event decoder and the metering line parser.
#   scripts/fuzz.sh [SECONDS per target, default 300] [TARGET...]
# Reads the committed corpus in tests/fuzz/corpus/TARGET; new inputs go to
# $BUILD_DIR/tests/fuzz/corpus-new/TARGET (merge interesting ones into the corpus with
# `TARGET -merge=1 tests/fuzz/corpus/TARGET $BUILD_DIR/tests/fuzz/corpus-new/TARGET`).
# A crash stops the script with libFuzzer's report and the crashing input (crash-*).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
seconds=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_manifest fuzz_event_decoder fuzz_meter)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  CC=${CC:-clang} CXX=${CXX:-clang++} cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$BUILD_DIR" -j "$(nproc)" --target "${targets[@]}"
for t in "${targets[@]}"; do
  scratch=$BUILD_DIR/tests/fuzz/corpus-new/$t
  mkdir -p "$scratch"
  echo "== $t for ${seconds}s"
  "$BUILD_DIR/tests/fuzz/$t" -max_total_time="$seconds" -max_len=8192 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$BUILD_DIR/tests/fuzz/" "$scratch" "tests/fuzz/corpus/$t"
done
echo "fuzz: no crash in ${#targets[@]} target(s), ${seconds}s each"
