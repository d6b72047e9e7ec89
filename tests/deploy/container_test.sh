#!/bin/bash
# Runs the enclosure inside real containers (podman, rootful, images built here from the binary
# under test: no registry). With the runtime's default security settings, `enclosure doctor`
# must name the set-up refusal and its fix, and `enclosure run` must stop with exit 125 naming
# the fix. With the settings the README documents for the standalone shape (privileged,
# unconfined seccomp and AppArmor, unmasked /proc), a run must allow a granted read, deny an
# ungranted one, stream its events and end at its wall-clock budget (exit 124). Last,
# `podman kube play` of examples/kubernetes/agent-standalone.yaml (with agent.yaml's ConfigMaps)
# must run the example agent to its report, each forbidden attempt denied. Then the daemon shape:
# enclosure-node.yaml's daemon and collector as containers, agent.yaml's unprivileged pod through
# the daemon (kube play), and runs with its settings whose events must reach the node's audit
# log; the daemon must leave no cgroup or pin behind.
# Usage: container_test.sh ENCLOSURE_BINARY SOURCE_DIR
# Root. Without root or podman it skips (77), except under CI=true, where it fails.
set -euo pipefail
binary=$(readlink -f "$1")
source_dir=$2

unavailable() {
    if [[ ${CI:-} == true ]]; then
        echo "container_test: FAIL (CI=true never skips): $*" >&2
        exit 1
    fi
    echo "container_test: skipped: $*" >&2
    exit 77
}
fail() {
    echo "container_test: FAIL: $*" >&2
    exit 1
}

[[ $(id -u) == 0 ]] || unavailable "needs root (rootful podman)"
command -v podman >/dev/null || unavailable "podman is not installed (scripts/install-deps.sh)"
[[ -f $source_dir/examples/kubernetes/agent-standalone.yaml ]] ||
    fail "no examples/kubernetes/agent-standalone.yaml under $source_dir"

work=$(mktemp -d /tmp/enclosure-container-test.XXXXXX)
image=localhost/enclosure-test:$$
name=enclosure-test-$$
# No systemd here (no D-Bus, no journald): cgroupfs and a file for podman's own events.
podman=(podman --cgroup-manager=cgroupfs --events-backend=file)
played_yamls=()
bpffs_mounted=
added_ids=()
cleanup() {
    "${podman[@]}" ps -a --format '{{.Names}}' 2>/dev/null | grep "^$name-" |
        xargs -r "${podman[@]}" rm -f -t 0 >/dev/null 2>&1 || true
    local yaml
    for yaml in "${played_yamls[@]}"; do
        "${podman[@]}" kube down "$yaml" >/dev/null 2>&1 || true
    done
    "${podman[@]}" volume ls -q | grep -- "-$$\$" | xargs -r "${podman[@]}" volume rm -f \
        >/dev/null 2>&1 || true
    [[ -n $bpffs_mounted ]] && umount "$work/node/bpf" 2>/dev/null
    for ids in "${added_ids[@]}"; do
        sed -i '/^containers:2147483647:2147483648$/d' "$ids"
    done
    find /sys/fs/cgroup -maxdepth 3 -type d -name "enclosure-ct-$$" 2>/dev/null |
        while read -r subtree; do find "$subtree" -depth -type d -exec rmdir {} + 2>/dev/null; done
    "${podman[@]}" rmi -f "$image" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# --- the image: the binary, its libraries, a few tools, two data files and the manifests -----
root=$work/root
mkdir -p "$root"/{usr/bin,usr/lib,usr/lib64,etc/enclosure,data,tmp,run,proc,sys,dev}
ln -s usr/bin "$root/bin"
ln -s usr/lib "$root/lib"
ln -s usr/lib64 "$root/lib64"
chmod 1777 "$root/tmp"
copy_with_libraries() {  # FILE DEST_IN_ROOT
    install -D -m 0755 "$1" "$root$2"
    local lib
    for lib in $(ldd "$1" | grep -o '/[^ ]*'); do
        # /lib and /lib64 are links to usr/ in the image (merged /usr, as on Debian 12).
        [[ -e $root$lib ]] || cp -L --parents "$lib" "$root/"
    done
}
copy_with_libraries "$binary" /usr/bin/enclosure
for tool in bash cat true sleep cp; do
    copy_with_libraries "$(readlink -f "$(type -P "$tool")")" "/usr/bin/$tool"
done
# The example agent of examples/kubernetes (report_agent.py) is Python: the host's python3 and
# its standard library, for the `podman kube play` step.
python=$(readlink -f /usr/bin/python3)
copy_with_libraries "$python" "$python"
ln -s "$(basename "$python")" "$root/usr/bin/python3"
python_lib=/usr/lib/$(basename "$python")
cp -a --parents "$python_lib" "$root/"
rm -rf "$root$python_lib"/{test,dist-packages,site-packages}
for module in "$python_lib"/lib-dynload/*.so; do copy_with_libraries "$module" "$module"; done
# Kubernetes makes an emptyDir mode 0777; podman copies the image's directory into the volume.
mkdir -p "$root"/{opt/enclosure,opt/agent,task,out}
chmod 1777 "$root/opt/enclosure" "$root/out"
printf '%s\n' 'root:x:0:0:root:/root:/bin/bash' 'nobody:x:65534:65534:nobody:/:/bin/false' \
    'nonroot:x:65532:65532:nonroot:/:/bin/false' >"$root/etc/passwd"
printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' 'nonroot:x:65532:' >"$root/etc/group"
echo "granted-content-$$" >"$root/data/granted.txt"
echo "not-granted-content-$$" >"$root/data/shadow.txt"
chmod 0600 "$root/data/shadow.txt"
manifest() {  # ENFORCEMENT_JSON
    cat <<EOF
{
  "apiVersion": "enclosure/v1",
  "metadata": {"name": "container-test", "revision": 1, "approved_by": "ci@example.com",
               "reason": "tests/deploy/container_test.sh"},
  "process": {"cwd": "/", "env": {"pass": ["PATH"]}},
  "filesystem": {"read": ["/usr", "/lib", "/lib64", "/bin", "/data/granted.txt"],
                 "tmpfs": ["/tmp"]},
  "tools": [
    {"name": "true", "path": "/usr/bin/true"},
    {"name": "cat", "path": "/usr/bin/cat"},
    {"name": "sleep", "path": "/usr/bin/sleep"}
  ],
  "network": {"mode": "none"},
  "budgets": {"wall_clock": "2s"},
  $1
  "on_violation": "deny"
}
EOF
}
manifest '' >"$root/etc/enclosure/manifest.json"
# In a default container eBPF and cgroups are refused too; allowing those to degrade makes the
# namespace set-up the refusal the run reports.
manifest '"enforcement": {"allow_degraded": ["bpf", "cgroup"]},' \
    >"$root/etc/enclosure/degraded.json"
"$binary" check "$root/etc/enclosure/manifest.json" "$root/etc/enclosure/degraded.json" >/dev/null ||
    fail "the test's manifests do not validate"
tar -C "$root" -c . |
    "${podman[@]}" import --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' - "$image" >/dev/null ||
    fail "podman import of the image failed"

# --- a runtime that starts a container here ---------------------------------------------------
# Rootful podman sets RLIMIT_NOFILE and RLIMIT_NPROC above the host's in the container by default;
# where the runtime lacks CAP_SYS_RESOURCE (as in some CI sandboxes) that fails ("setrlimit:
# Operation not permitted"), so the limits are set explicitly, low.
run_flags=(--ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
# crun refuses hybrid cgroup hierarchies (v1 controllers plus a cgroup2 mount); runc takes them.
probe_errors=
runtime=()
for candidate in "" runc crun; do
    flags=()
    [[ -n $candidate ]] && flags=(--runtime "$candidate")
    if out=$("${podman[@]}" "${flags[@]}" run --rm --name "$name-probe" "${run_flags[@]}" \
        "$image" /usr/bin/true 2>&1); then
        runtime=("${flags[@]}")
        probe_errors=
        break
    fi
    probe_errors+="  runtime ${candidate:-default}: $out"$'\n'
done
if [[ -n $probe_errors ]]; then
    unavailable "podman cannot start a container on this machine (flags: ${podman[*]} \
${run_flags[*]}):"$'\n'"$probe_errors"
fi
podman+=("${runtime[@]}")
echo "container_test: podman runs containers with: ${podman[*]} run ${run_flags[*]}"

in_container() {  # NAME_SUFFIX SECURITY_FLAGS... -- COMMAND...
    local suffix=$1 security=()
    shift
    while [[ $1 != -- ]]; do
        security+=("$1")
        shift
    done
    shift
    "${podman[@]}" run --rm --name "$name-$suffix" "${run_flags[@]}" "${security[@]}" \
        "$image" "$@"
}
show() {  # LABEL TEXT [WIDTH]: the text indented under its label, lines cut at WIDTH
    local line
    while IFS= read -r line; do
        printf '  %s: %s\n' "$1" "${line:0:${3:-100000}}"
    done <<<"$2"
}
fix_pattern='seccompProfile|procMount|SYS_ADMIN'

# --- the runtime's default security settings: refused, and the fix is named ------------------
doctor=$(in_container doctor -- /usr/bin/enclosure doctor 2>&1) || true
show "doctor (default container)" "$doctor"
if grep -q 'Everything a typical manifest needs is available' <<<"$doctor"; then
    fail "doctor in a default container says everything is available"
fi
grep -Eq "$fix_pattern" <<<"$doctor" ||
    fail "doctor in a default container names no fix (/$fix_pattern/)"

rc=0
refused=$(in_container refused -- /usr/bin/enclosure run -m /etc/enclosure/degraded.json \
    -- true 2>&1) || rc=$?
show "run (default container)" "$refused"
[[ $rc == 125 ]] || fail "run in a default container exited $rc, expected 125"
grep -Eq "$fix_pattern" <<<"$refused" ||
    fail "run in a default container names no fix (/$fix_pattern/)"

# --- the standalone shape's settings (examples/kubernetes/agent-standalone.yaml) --------------
standalone=(--privileged --security-opt seccomp=unconfined --security-opt apparmor=unconfined
            --security-opt unmask=ALL --cgroupns host --read-only)
# On a hybrid cgroup host (v1 controllers, cgroup2 at /sys/fs/cgroup/unified) runc mounts only the
# v1 controllers into a container; the run's cgroup and the eBPF programs need the cgroup2 one.
if [[ $(stat -f -c %T /sys/fs/cgroup) != cgroup2fs &&
      $(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null) == cgroup2fs ]]; then
    standalone+=(-v /sys/fs/cgroup/unified:/sys/fs/cgroup/unified)
fi
echo "container_test: the standalone shape runs with: ${standalone[*]}"
rc=0
allowed=$(in_container allowed "${standalone[@]}" -- /usr/bin/enclosure run \
    -m /etc/enclosure/manifest.json --events - -- cat /data/granted.txt 2>&1) || rc=$?
show "run (standalone, granted read)" "$allowed" 200
[[ $rc == 0 ]] || fail "the granted read exited $rc, expected 0"
grep -qx "granted-content-$$" <<<"$allowed" || fail "the granted file's content is not printed"
grep -q '"type":"start"' <<<"$allowed" || fail "no start event on --events -"
grep -q '"type":"exit"' <<<"$allowed" || fail "no exit event on --events -"

rc=0
denied=$(in_container denied "${standalone[@]}" -- /usr/bin/enclosure run \
    -m /etc/enclosure/manifest.json -- cat /data/shadow.txt 2>&1) || rc=$?
show "run (standalone, ungranted read)" "$denied"
[[ $rc != 0 ]] || fail "the ungranted read succeeded"
grep -q "not-granted-content-$$" <<<"$denied" && fail "the ungranted file's content leaked"
grep -Eq 'No such file or directory|Permission denied|deny' <<<"$denied" ||
    fail "the ungranted read failed without ENOENT, EACCES or a deny"

rc=0
budget=$(in_container budget "${standalone[@]}" -- /usr/bin/enclosure run \
    -m /etc/enclosure/manifest.json -- sleep 10 2>&1) || rc=$?
show "run (standalone, sleep 10 with wall_clock 2s)" "$budget"
[[ $rc == 124 ]] || fail "the wall-clock budget run exited $rc, expected 124"

# --- the standalone pod itself: podman kube play of examples/kubernetes/agent-standalone.yaml ----
# With agent.yaml's ConfigMaps (the manifest, the agent, its task) and this image for both of its
# images; pod, ConfigMaps and volumes get this test's suffix. What podman needs beyond the YAML:
# the limits above (containers.conf, as kube play has no --ulimit), catatonit (the pod's pause
# process) and, on a hybrid cgroup host, the cgroup2 mount (a hostPath volume).
command -v catatonit >/dev/null || [[ -x /usr/libexec/podman/catatonit ]] ||
    unavailable "catatonit (podman's pause process for pods) is not installed"
printf '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n' \
    >"$work/containers.conf"
# play_yaml POD_FILE OUT [HOST_RUN_DIR]: agent.yaml's ConfigMaps and the pod of POD_FILE, with
# this test's image and suffix; the pod's /run/enclosure hostPath becomes HOST_RUN_DIR.
play_yaml() {
    /usr/bin/python3 - "$source_dir/examples/kubernetes" "$1" "$image" "$$" \
        "$([[ ${standalone[*]} == *unified* ]] && echo hybrid)" "${3:-}" >"$2" <<'EOF_PY'
import sys
import yaml
examples, pod_file, image, suffix, hybrid, run_dir = sys.argv[1:7]
with open(f"{examples}/agent.yaml") as f:
    config_maps = [d for d in yaml.safe_load_all(f) if d and d["kind"] == "ConfigMap"]
with open(f"{examples}/{pod_file}") as f:
    (pod,) = [d for d in yaml.safe_load_all(f) if d and d["kind"] == "Pod"]
for config_map in config_maps:
    config_map["metadata"]["name"] += f"-{suffix}"
spec = pod["spec"]
pod["metadata"]["name"] += f"-{suffix}"
for volume in spec["volumes"]:
    volume["name"] += f"-{suffix}"
    if "configMap" in volume:
        volume["configMap"]["name"] += f"-{suffix}"
    if run_dir and volume.get("hostPath", {}).get("path") == "/run/enclosure":
        volume["hostPath"]["path"] = run_dir
for container in spec["initContainers"] + spec["containers"]:
    container["image"] = image
    for mount in container.get("volumeMounts", []):
        mount["name"] += f"-{suffix}"
if hybrid and pod_file == "agent-standalone.yaml":
    spec["volumes"].append({"name": f"cgroup2-{suffix}",
                            "hostPath": {"path": "/sys/fs/cgroup/unified", "type": "Directory"}})
    agent = next(c for c in spec["containers"] if c["name"] == "agent")
    agent["volumeMounts"].append({"name": f"cgroup2-{suffix}",
                                  "mountPath": "/sys/fs/cgroup/unified"})
yaml.safe_dump_all(config_maps + [pod], sys.stdout, sort_keys=False)
EOF_PY
}
# play_agent YAML LABEL: plays the pod, waits for its agent container and
# checks the example agent's report.
play_agent() {
    local yaml=$1 label=$2 pod rc played
    pod=$(/usr/bin/python3 -c 'import sys, yaml; print([d for d in yaml.safe_load_all(open(sys.argv[1]))
        if d["kind"] == "Pod"][0]["metadata"]["name"])' "$yaml")
    CONTAINERS_CONF=$work/containers.conf "${podman[@]}" kube play "$yaml" >/dev/null ||
        fail "podman kube play of $label failed"
    rc=$("${podman[@]}" wait "$pod-agent") || fail "podman wait $pod-agent failed"
    played=$("${podman[@]}" logs "$pod-agent" 2>&1)
    "${podman[@]}" kube down "$yaml" >/dev/null 2>&1 || true
    check_agent_report "kube play $label" "$rc" "$played"
}
# check_agent_report LABEL RC OUTPUT: the example agent's report, each of its four forbidden
# attempts denied, start and exit events in its output (--events -).
check_agent_report() {
    local label=$1 rc=$2 played=$3
    show "$label" "$(grep -v '^{' <<<"$played")"
    [[ $rc == 0 ]] || fail "the agent container of $label exited $rc, expected 0"
    grep -q '^agent: wrote /out/report.md' <<<"$played" || fail "the agent of $label wrote no report"
    grep -q 'SUCCEEDED' <<<"$played" && fail "the agent of $label did something its manifest forbids"
    [[ $(grep -c '^agent: .*: denied' <<<"$played") == 4 ]] ||
        fail "the agent of $label was not denied its four forbidden attempts"
    if ! grep -q '"type":"start"' <<<"$played" || ! grep -q '"type":"exit"' <<<"$played"; then
        fail "the events of $label (--events -) hold no start and exit"
    fi
}
play_yaml agent-standalone.yaml "$work/standalone.yaml"
played_yamls+=("$work/standalone.yaml")
play_agent "$work/standalone.yaml" agent-standalone.yaml

# --- the daemon shape: enclosure-node.yaml's daemon and collector, agent.yaml's pod -----------
# podman has no DaemonSet: the node's two containers run with `podman run` and the settings of
# enclosure-node.yaml (the daemon privileged, in the host's PID and cgroup namespaces; the
# collector without capabilities). /run/enclosure, the log directory and the bpffs are this
# test's own (a private bpffs: /sys/fs/bpf is not mounted here).
node=$work/node
mkdir -p "$node/run" "$node/log" "$node/bpf"
chmod 0755 "$node/run"
mount -t bpf bpf "$node/bpf" || fail "cannot mount a private bpffs at $node/bpf"
bpffs_mounted=1
daemon_flags=(--privileged --pid host --cgroupns host --security-opt seccomp=unconfined
              --security-opt apparmor=unconfined --read-only
              -v "$node/run:/run/enclosure" -v "$node/bpf:/sys/fs/bpf")
[[ ${standalone[*]} == *unified* ]] &&
    daemon_flags+=(-v /sys/fs/cgroup/unified:/sys/fs/cgroup/unified)
"${podman[@]}" run -d --name "$name-daemon" "${run_flags[@]}" "${daemon_flags[@]}" "$image" \
    /usr/bin/enclosure daemon --socket /run/enclosure/daemon.sock --cgroup "enclosure-ct-$$" \
    >/dev/null || fail "podman run of the daemon failed"
"${podman[@]}" run -d --name "$name-collector" "${run_flags[@]}" --user 0:0 --cap-drop ALL \
    --security-opt no-new-privileges --read-only \
    -v "$node/run:/run/enclosure" -v "$node/log:/var/log/enclosure" "$image" \
    /usr/bin/enclosure collect --listen unix:/run/enclosure/collector.sock \
    --audit-log /var/log/enclosure/audit.jsonl --socket-mode 0666 >/dev/null ||
    fail "podman run of the collector failed"
for _ in $(seq 100); do
    [[ -S $node/run/daemon.sock && -S $node/run/collector.sock ]] && break
    sleep 0.1
done
if [[ ! -S $node/run/daemon.sock || ! -S $node/run/collector.sock ]]; then
    show "daemon" "$("${podman[@]}" logs "$name-daemon" 2>&1)"
    show "collector" "$("${podman[@]}" logs "$name-collector" 2>&1)"
    fail "the node's daemon and collector sockets did not appear"
fi

# agent.yaml's pod, with `podman run`: podman 4.3's kube play cannot give a container an
# unmasked /proc (procMount: Unmasked), which the launcher needs to mount the agent's own. The
# same settings as flags: its ConfigMaps as read-only volumes, the binary where its init
# container copies it, uid 65532 without capabilities, and hostUsers: false as a user namespace
# of the pod's own (--userns auto, from the subordinate ids of the user "containers", as CRI-O
# does; a fresh host has none, so the test adds podman's documented range for the run and
# removes its lines again at exit; podman's automatic size is 1024 ids, the pod's uid 65532).
for ids in /etc/subuid /etc/subgid; do
    if ! grep -q '^containers:' "$ids" 2>/dev/null; then
        echo "containers:2147483647:2147483648" >>"$ids"
        added_ids+=("$ids")
    fi
done
pod_dir=$work/agent-pod
mkdir -p "$pod_dir"/{manifest,agent,task,out}
chmod 0777 "$pod_dir/out"
mapfile -d '' agent_command < <(/usr/bin/python3 - "$source_dir/examples/kubernetes/agent.yaml" \
    "$pod_dir" <<'EOF_PY'
import sys
import yaml
source, pod_dir = sys.argv[1:3]
docs = [d for d in yaml.safe_load_all(open(source)) if d]
maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
(pod,) = [d for d in docs if d["kind"] == "Pod"]
mounts = {"manifest": "manifest", "agent-code": "agent", "task": "task"}
for volume in pod["spec"]["volumes"]:
    if volume["name"] not in mounts:
        continue
    data = maps[volume["configMap"]["name"]]
    items = volume["configMap"].get("items") or [{"key": k, "path": k} for k in data]
    for item in items:
        with open(f"{pod_dir}/{mounts[volume['name']]}/{item['path']}", "w") as f:
            f.write(data[item["key"]])
(agent,) = [c for c in pod["spec"]["containers"] if c["name"] == "agent"]
sys.stdout.write("".join(arg + "\0" for arg in agent["command"]))
EOF_PY
)
[[ ${#agent_command[@]} -gt 3 ]] || fail "no agent command in agent.yaml"
rc=0
played=$("${podman[@]}" run --rm --name "$name-agent-pod" "${run_flags[@]}" --userns auto:size=65536 \
    --user 65532:65532 --cap-drop ALL --security-opt no-new-privileges \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --security-opt unmask=ALL --read-only -e LANG=C.UTF-8 \
    -v "$binary:/opt/enclosure/enclosure:ro" -v "$pod_dir/manifest:/etc/enclosure:ro" \
    -v "$pod_dir/agent:/opt/agent:ro" -v "$pod_dir/task:/task:ro" -v "$pod_dir/out:/out" \
    -v "$node/run:/run/enclosure:ro" "$image" "${agent_command[@]}" 2>&1) || rc=$?
check_agent_report "agent.yaml (podman run, through the daemon)" "$rc" "$played"

# agent.yaml's container settings, with `podman run`: an unprivileged launcher (uid 65532, no
# capabilities) whose events go to the node's collector.
agent_flags=(--user 65532:65532 --cap-drop ALL --security-opt no-new-privileges
             --security-opt seccomp=unconfined --security-opt apparmor=unconfined
             --security-opt unmask=ALL --read-only -v "$node/run:/run/enclosure")
through_daemon() {  # SUFFIX COMMAND...
    local suffix=$1
    shift
    in_container "$suffix" "${agent_flags[@]}" -- /usr/bin/enclosure run \
        --daemon /run/enclosure/daemon.sock -m /etc/enclosure/manifest.json \
        --events unix:/run/enclosure/collector.sock -- "$@"
}
rc=0
allowed=$(through_daemon d-allowed cat /data/granted.txt 2>&1) || rc=$?
show "run (daemon, granted read)" "$allowed" 200
[[ $rc == 0 ]] || fail "the granted read through the daemon exited $rc, expected 0"
grep -qx "granted-content-$$" <<<"$allowed" || fail "the granted file's content is not printed"
rc=0
denied=$(through_daemon d-denied cat /data/shadow.txt 2>&1) || rc=$?
show "run (daemon, ungranted read)" "$denied"
[[ $rc != 0 ]] || fail "the ungranted read through the daemon succeeded"
grep -q "not-granted-content-$$" <<<"$denied" && fail "the ungranted file's content leaked"
rc=0
budget=$(through_daemon d-budget sleep 10 2>&1) || rc=$?
show "run (daemon, sleep 10 with wall_clock 2s)" "$budget"
[[ $rc == 124 ]] || fail "the wall-clock budget through the daemon exited $rc, expected 124"

# The node's audit log: the three runs, each closed, the chain intact.
log=$node/log/audit.jsonl
for _ in $(seq 50); do
    [[ $(grep -c '"type":"exit"' "$log" 2>/dev/null) -ge 3 ]] && break
    sleep 0.1
done
[[ $(grep -c '"type":"exit"' "$log" 2>/dev/null) -ge 3 ]] ||
    fail "the node's audit log does not hold the exits of the three runs through the daemon"
grep -q '"ended_by":"budget"' "$log" || fail "the audit log does not say the budget ended a run"
verified=$("$binary" audit verify "$log" 2>&1) || fail "audit verify of the node's log: $verified"
show "audit verify (node log)" "$verified"

# The daemon leaves nothing once it stops with no enclosure running.
"${podman[@]}" stop -t 10 "$name-daemon" >/dev/null 2>&1 || true
[[ -z $(find /sys/fs/cgroup -maxdepth 3 -name "enclosure-ct-$$" 2>/dev/null) ]] ||
    fail "the daemon left its cgroup subtree enclosure-ct-$$"
# (maps.debug and progs.debug are the bpffs's own)
[[ ! -e $node/bpf/enclosure ]] ||
    fail "the daemon left pins in its bpffs: $(ls -A "$node/bpf/enclosure")"

echo "container_test: ok"
