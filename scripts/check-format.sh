#!/usr/bin/env bash
# Fails when a C, C++ or BPF C source of the repository is not formatted as its .clang-format
# says (clang-format --dry-run --Werror), naming each file and line. With --fix it formats them
# in place instead. The BPF programs (bpf/*.bpf.c, bpf/*.bpf.h) and the ABI header they share
# (bpf/enclosure_abi.h) follow bpf/.clang-format, the kernel's style; the C++ files in bpf/
# follow the project's ../.clang-format like every other file.
# Usage: scripts/check-format.sh [--fix]   (CLANG_FORMAT=clang-format-14 to choose the binary)
set -euo pipefail
cd "$(dirname "$0")/.."
CLANG_FORMAT=${CLANG_FORMAT:-clang-format}
mode=(--dry-run --Werror)
if [ "${1:-}" = "--fix" ]; then
  mode=(-i)
elif [ $# -gt 0 ]; then
  echo "usage: $0 [--fix]" >&2
  exit 2
fi
if ! command -v "$CLANG_FORMAT" >/dev/null; then
  echo "$0: $CLANG_FORMAT not found (install clang-format)" >&2
  exit 2
fi

# Tracked files and new ones not ignored, that exist in the work tree.
project_style=() own_style=()
while IFS= read -r -d '' f; do
  [ -f "$f" ] || continue
  case "$f" in
    bpf/*.bpf.c | bpf/*.bpf.h | bpf/enclosure_abi.h) own_style+=("$f") ;;
    bpf/*) project_style+=("$f") ;;
    *) own_style+=("$f") ;;
  esac
done < <(
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard -- '*.cc' '*.h' '*.c' | sort -zu
  else  # a source tarball: every source outside build directories
    find . -path './build*' -prune -o -type f \( -name '*.cc' -o -name '*.h' -o -name '*.c' \) \
      -printf '%P\0' | sort -zu
  fi
)

status=0
# The nearest .clang-format: the project's, or bpf/'s for the BPF C.
if [ ${#own_style[@]} -gt 0 ]; then
  "$CLANG_FORMAT" --style=file "${mode[@]}" "${own_style[@]}" || status=1
fi
if [ ${#project_style[@]} -gt 0 ]; then
  "$CLANG_FORMAT" --style="file:$PWD/.clang-format" "${mode[@]}" "${project_style[@]}" || status=1
fi
if [ $status -ne 0 ]; then
  echo "$0: formatting differs from .clang-format; scripts/check-format.sh --fix rewrites it" >&2
fi
exit $status
