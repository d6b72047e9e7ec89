#!/usr/bin/env bash
# Configures, builds and runs every test (unit, ASan/UBSan unit, kernel, fuzz smoke), and the
# `format` test: clang-format drift fails it (scripts/check-format.sh --fix rewrites the files).
# Kernel tests need root; with CI=true they fail instead of skipping when not root.
# Ends with ctest's summary. Usage: scripts/test.sh [ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}

if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  CC=${CC:-clang} CXX=${CXX:-clang++} cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build "$BUILD_DIR" -j "$JOBS"
cd "$BUILD_DIR"
ctest --output-on-failure -j "$JOBS" "$@"
