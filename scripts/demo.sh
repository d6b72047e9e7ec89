#!/usr/bin/env bash
# Builds enclosure and runs the example agent (examples/agents/report_agent.py) under its
# manifest (examples/agents/report-agent.json): it summarises a task folder into a report, then
# tries to read SSH keys, write outside its output folder, connect out and ptrace - and each of
# these fails in the kernel. Prints the agent's output, the report and the run's events.
# Run as root (the eBPF and cgroup layers need it).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
if [ ! -x "$BUILD_DIR/launcher/enclosure" ]; then
  if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    CC=${CC:-clang} CXX=${CXX:-clang++} cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  cmake --build "$BUILD_DIR" -j "$(nproc)" --target enclosure
fi
ENCLOSURE=$PWD/$BUILD_DIR/launcher/enclosure

work=$(mktemp -d /tmp/enclosure-demo-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/task" "$work/out"
cp examples/agents/report_agent.py "$work/agent.py"
printf 'Quarterly revenue grew in all regions.\nChurn fell slightly.\n' > "$work/task/q3-notes.txt"
printf 'Action items: renew the support contract; hire two engineers.\n' > "$work/task/minutes.txt"
chmod 755 "$work" "$work/task"
chmod 644 "$work"/task/* "$work/agent.py"
chown 65534:65534 "$work/out"

echo "== enclosure explain (what the reviewer approved)"
"$ENCLOSURE" explain examples/agents/report-agent.json | sed -n '1,25p'
echo
echo "== enclosure run"
set +e
"$ENCLOSURE" run -m examples/agents/report-agent.json \
  --context task="$work/task" --context out="$work/out" --context agent="$work/agent.py" \
  --events "$work/events.jsonl" -- python3 "$work/agent.py"
status=$?
set -e
echo "(exit status $status)"
echo
echo "== the report the agent wrote"
cat "$work/out/report.md"
echo
echo "== events (one JSON object per line; start and exit abridged)"
python3 - "$work/events.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    for k in ("manifest_document", "host", "manifest"):
        e.pop(k, None)
    if e["type"] == "start":
        e = {k: e[k] for k in ("ts", "seq", "type", "tool", "command", "enforcement")}
    print(json.dumps(e))
PY
