#!/usr/bin/env bash
# Fails when a function in the product's sources is longer than can be read at once: over 120
# lines in launcher/, policy/ and bpf/ (C, C++ and BPF C), over 150 in tests/ (a test may hold a
# table). Lengths come from universal-ctags (start and end line of each function definition),
# so multi-line signatures and lambdas inside a function count with it.
# Usage: scripts/check-function-length.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v ctags >/dev/null || ! ctags --version 2>/dev/null | grep -q Universal; then
  echo "$0: universal-ctags not found (apt-get install universal-ctags)" >&2
  exit 2
fi

# Prints "LENGTH FILE:LINE NAME" for every function in the files given, longest first.
lengths() {
  ctags --fields=+ne --kinds-c++=f --kinds-c=f --langmap=c:+.bpf.c -o - "$@" 2>/dev/null |
    awk -F'\t' '{ line = ""; end = ""
                  for (i = 4; i <= NF; i++) {
                    if ($i ~ /^line:/) line = substr($i, 6)
                    if ($i ~ /^end:/) end = substr($i, 5)
                  }
                  if (line != "" && end != "") print end - line + 1, $2 ":" line, $1 }' |
    sort -rn
}

failed=0
check() {
  local limit=$1 && shift
  local files=()
  while IFS= read -r -d '' f; do
    [ -f "$f" ] && files+=("$f")
  done < <(git ls-files -z --cached --others --exclude-standard -- "$@")
  [ ${#files[@]} -gt 0 ] || return 0
  while read -r length where name; do
    if [ "$length" -gt "$limit" ]; then
      echo "$where: $name is $length lines (at most $limit: split it into named steps)"
      failed=1
    fi
  done < <(lengths "${files[@]}")
}

check 120 'launcher/*.cc' 'launcher/*.h' 'policy/*.cc' 'policy/*.h' 'bpf/*.cc' 'bpf/*.h' 'bpf/*.c'
check 150 'tests/*.cc' 'tests/*.c' 'tests/*.h'
if [ "$failed" -ne 0 ]; then
  exit 1
fi
echo "check-function-length: no function over the limits"
