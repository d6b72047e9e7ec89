#!/bin/bash
# Runs the README's quick start block as written, from the checkout, with the binary under test
# in place of build/launcher/enclosure (root: the run line starts an enclosure). A directory
# the block creates on the host is removed again.
# Usage: quick_start_test.sh ENCLOSURE_BINARY SOURCE_DIR
set -euo pipefail
binary=$1
source_dir=$2
block=$(awk '/^## Quick start/ {in_section = 1} in_section && /^```sh/ {in_block = 1; next}
             in_block && /^```/ {exit} in_block {print}' "$source_dir/README.md")
if [[ -z $block ]]; then
    echo "quick_start_test: no sh block under '## Quick start' in README.md" >&2
    exit 1
fi
created=
[[ -e /srv/repos/scratch ]] || created=1
cleanup() {
    if [[ -n $created ]]; then rmdir /srv/repos/scratch 2>/dev/null || true; fi
    rm -f /tmp/my-change.json
}
trap cleanup EXIT
cd "$source_dir"
script=$(printf '%s\n' "$block" | sed "s|^B=build/launcher/enclosure|B=$binary|")
# As a user types it: one line after the other (diff exits 1 when the manifests differ, as
# diff(1) does); each line's effect is checked below.
out=$(bash -u -c "$script" 2>&1) || true
for expected in '^examples/coding-agent.json: valid: coding-agent' \
                '^Manifest "customer-data-agent"' \
                '^widened +tools +tool python max_calls 200 -> 900' \
                '^hello$' \
                '^RUN +MANIFEST'; do
    grep -Eq "$expected" <<<"$out" || {
        echo "$out" >&2
        echo "quick_start_test: no line matching /$expected/ in the output (above)" >&2
        exit 1
    }
done
echo "quick_start_test: the README quick start ran as written"
