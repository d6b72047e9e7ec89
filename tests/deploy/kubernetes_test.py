#!/usr/bin/env python3
"""Checks examples/kubernetes/: every YAML document parses; every container that runs `enclosure`
runs a command the binary has, with options it knows (`enclosure --help`, `enclosure CMD --help`).

The node DaemonSets: the collector is unprivileged, without capabilities, and not in the node's PID
namespace, and signs its log with a key from a Secret (--sign-key, defaultMode 0400, read-only); the daemon (`enclosure daemon --socket PATH`) is alone in a pod with hostPID: true (it
numbers its callers' processes in the node's PID namespace), runs as uid 0, privileged (the node's
cgroup namespace: see enclosure-node.yaml), adds exactly BPF, PERFMON, NET_ADMIN, CHOWN, KILL,
SYS_ADMIN and SYS_RESOURCE (the list its comments justify), seccomp and AppArmor Unconfined, and
mounts the node's /run/enclosure (its socket and state), /sys/fs/bpf (pins) and /sys/fs/cgroup
writable, with --socket (and --pin-dir, --state-dir when given) on those volumes.

Each agent pod: its manifest (from its ConfigMap) passes `enclosure check`, and the pod's command
is a valid `enclosure run` invocation: the binary is the one its init container copies, -m names
the file the ConfigMap volume puts there, --events goes to standard error, the command after -- is
one of the manifest's tools, and the manifest's process.user is not root. Then, by shape:
- with --daemon PATH (agent.yaml): PATH is, on the node, the daemon's --socket (a hostPath
  directory mount, shared with the daemon's pod); the launcher is unprivileged: not uid 0,
  runAsNonRoot, no capabilities, not privileged, allowPrivilegeEscalation false, a user namespace
  for the pod (hostUsers: false), procMount Unmasked, seccomp and AppArmor Unconfined or Localhost
  (the runtime's defaults refuse user namespaces and mounts);
- without (agent-standalone.yaml): the launcher builds the enclosure itself, as root: uid 0 in
  the node's user namespace, privileged, seccomp and AppArmor Unconfined.
At least one agent pod uses the daemon.

Usage: kubernetes_test.py ENCLOSURE_BINARY SOURCE_DIR"""
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile

import yaml

failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
    return condition


def load_documents(directory):
    docs = []
    names = sorted(n for n in os.listdir(directory) if n.endswith((".yaml", ".yml")))
    check(names, f"{directory}: no YAML files")
    for name in names:
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            for i, doc in enumerate(yaml.safe_load_all(f)):
                if doc is None:
                    continue
                where = f"{name}#{i}"
                if not check(isinstance(doc, dict), f"{where}: not a mapping"):
                    continue
                for key in ("apiVersion", "kind", "metadata"):
                    check(key in doc, f"{where}: no {key}")
                check("name" in doc.get("metadata", {}), f"{where}: no metadata.name")
                docs.append((where, doc))
    return docs


def pod_specs(docs):
    """(where, namespace, pod spec) of Pods and of the pod templates of workload objects."""
    for where, doc in docs:
        ns = doc["metadata"].get("namespace", "default")
        kind = doc["kind"]
        if kind == "Pod":
            yield where, ns, doc["spec"]
        elif kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
            yield where, ns, doc["spec"]["template"]["spec"]
        elif kind == "CronJob":
            yield where, ns, doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def run_help(enclosure):
    out = subprocess.run([enclosure, "run", "--help"], capture_output=True, text=True)
    check(out.returncode == 0, f"enclosure run --help exited {out.returncode}")
    return out.stdout


# Options of `enclosure run` that take a value, and those that do not.
VALUE_OPTIONS = {"-m", "--manifest", "--context", "--context-file", "--events", "--grace",
                 "--ring-buffer", "--collector-buffer", "--dns-upstream", "--dns-grace", "--daemon"}
FLAG_OPTIONS = {"--audit-required"}
# What the daemon's container adds (enclosure-node.yaml justifies each).
DAEMON_CAPABILITIES = ["BPF", "CHOWN", "KILL", "NET_ADMIN", "PERFMON", "SYS_ADMIN", "SYS_RESOURCE"]


def parse_run(argv, where):
    """The options of an `enclosure run` argv (after "run") and the command after "--"."""
    options, i = {}, 0
    while i < len(argv) and argv[i] != "--":
        a = argv[i]
        name, _, inline = a.partition("=")
        if name in VALUE_OPTIONS:
            if inline:
                value = inline
            else:
                i += 1
                if not check(i < len(argv) and argv[i] != "--", f"{where}: {a} needs a value"):
                    return options, []
                value = argv[i]
            options.setdefault("--manifest" if name == "-m" else name, []).append(value)
        elif name not in FLAG_OPTIONS:
            check(False, f"{where}: `enclosure run` has no option {a!r}")
        i += 1
    if not check(i < len(argv), f"{where}: no -- before the agent's command"):
        return options, []
    return options, argv[i + 1:]


def tool_for(command, tools):
    """The launcher's rule: by absolute path, by tool name, or by the basename of a tool's path."""
    for t in tools:
        if command == t["path"] or command == t["name"]:
            return t
    for t in tools:
        if "/" not in command and os.path.basename(t["path"]) == command:
            return t
    return None


def mounted_file(container, volumes, path):
    """The (volume, key) that puts `path` into the container, or (None, None)."""
    for m in container.get("volumeMounts", []):
        mount = m["mountPath"].rstrip("/")
        volume = volumes.get(m["name"])
        if volume is None:
            continue
        if "subPath" in m:
            if path == mount:
                return volume, m["subPath"]
            continue
        if path.startswith(mount + "/"):
            rel = path[len(mount) + 1:]
            cm = volume.get("configMap")
            if cm and "items" in cm:
                for item in cm["items"]:
                    if item["path"] == rel:
                        return volume, item["key"]
                return volume, None
            return volume, rel
    return None, None


def enclosure_commands(enclosure):
    """The commands `enclosure --help` lists."""
    out = subprocess.run([enclosure, "--help"], capture_output=True, text=True).stdout
    commands = set(re.findall(r"^  ([a-z]+) ", out, re.M))
    check(commands, "enclosure --help lists no commands")
    return commands


def check_enclosure_commands(where, spec, commands, enclosure):
    """Every container that runs enclosure runs a command it has, with options it knows."""
    for c in spec.get("initContainers", []) + spec["containers"]:
        cmd = c.get("command", []) + c.get("args", [])
        if len(cmd) < 2 or os.path.basename(cmd[0]) != "enclosure":
            continue
        if not check(cmd[1] in commands, f"{where}: {c['name']}: enclosure has no command {cmd[1]!r}"):
            continue
        help_text = subprocess.run([enclosure, cmd[1], "--help"], capture_output=True,
                                   text=True).stdout
        for w in cmd[2:]:
            if w == "--":
                break
            if w.startswith("--"):
                check(w.split("=")[0] in help_text,
                      f"{where}: {c['name']}: `enclosure {cmd[1]}` has no option {w}")


def host_path_of(container, volumes, path):
    """The node's path that `path` in the container is, through a hostPath volume, or None."""
    best = None
    for m in container.get("volumeMounts", []):
        mount = m["mountPath"].rstrip("/")
        volume = volumes.get(m["name"])
        if volume is None or "hostPath" not in volume or "subPath" in m:
            continue
        if path == mount or path.startswith(mount + "/"):
            if best is None or len(mount) > len(best[0]):
                best = (mount, volume["hostPath"]["path"].rstrip("/"), m)
    if best is None:
        return None, None
    mount, host, m = best
    return host + path[len(mount):], m


def option_value(args, flag):
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def check_collector(where, spec, c, volumes):
    sc = c.get("securityContext", {})
    check(sc.get("privileged") is False, f"{where}: collector: privileged must be false, explicitly")
    check(sc.get("allowPrivilegeEscalation") is False,
          f"{where}: collector: allowPrivilegeEscalation must be false")
    check(sc.get("capabilities", {}).get("drop") == ["ALL"],
          f"{where}: collector: capabilities must drop ALL")
    check(not sc.get("capabilities", {}).get("add"), f"{where}: the collector needs no capability")
    # uid 0 without capabilities may still signal every uid-0 process it can see.
    check(spec.get("hostPID") is not True,
          f"{where}: the collector must not share the node's PID namespace (uid 0 could signal "
          "the node's root processes); the daemon has a pod of its own")
    cmd = c["command"]
    args = cmd[2:]
    listen = option_value(args, "--listen")
    log = option_value(args, "--audit-log")
    check(listen == "unix:/run/enclosure/collector.sock", f"{where}: collector --listen {listen}")
    node, _ = host_path_of(c, volumes, "/run/enclosure")
    check(node == "/run/enclosure", f"{where}: collector does not mount the node's /run/enclosure")
    check(log is not None and host_path_of(c, volumes, os.path.dirname(log))[0] is not None,
          f"{where}: the audit log {log} is not on a hostPath volume")
    check_signing_secret(where, c, volumes, option_value(args, "--sign-key"))


def check_signing_secret(where, c, volumes, key):
    """--sign-key names a file of a Secret mounted read-only with defaultMode 0400 (the collector
    refuses a key that group or others may read)."""
    if not check(key is not None, f"{where}: the collector does not sign its log (--sign-key)"):
        return
    volume, item = mounted_file(c, volumes, key)
    secret = (volume or {}).get("secret")
    if not check(secret is not None and item, f"{where}: --sign-key {key} is not in a Secret"):
        return
    check(secret.get("defaultMode") == 0o400,
          f"{where}: the signing Secret's defaultMode is {secret.get('defaultMode')!r}, not 0400")
    mount = next(m for m in c.get("volumeMounts", []) if volumes.get(m["name"]) is volume)
    check(mount.get("readOnly") is True, f"{where}: the signing Secret is not mounted readOnly")


def check_daemon(where, spec, c, volumes):
    """The daemon's container; returns the node path of its socket."""
    check(len(spec["containers"]) == 1 and not spec.get("initContainers"),
          f"{where}: the daemon must be alone in its pod (hostPID shows it the node's processes)")
    check(spec.get("hostPID") is True,
          f"{where}: hostPID must be true: SO_PEERCRED and the launcher's pidfd give pids in the "
          "daemon's PID namespace, and cgroup.procs takes them")
    check(spec.get("hostUsers", True) is not False,
          f"{where}: hostUsers: false puts the daemon in a user namespace, where the kernel grants "
          "neither BPF nor writes to the node's cgroup tree")
    sc = c.get("securityContext", {})
    check(sc.get("runAsUser", spec.get("securityContext", {}).get("runAsUser")) == 0,
          f"{where}: the daemon runs as uid 0 (the node's cgroup tree, bpffs and /run/enclosure)")
    check(sc.get("privileged") is True,
          f"{where}: the daemon's container must be privileged: on a cgroup v2 node only that puts "
          "it in the node's cgroup namespace, without which (nsdelegate) it cannot move an agent "
          "from its pod's cgroup into the run's")
    caps = sc.get("capabilities", {}).get("add", [])
    check(sorted(caps) == DAEMON_CAPABILITIES,
          f"{where}: daemon capabilities {sorted(caps)}, expected exactly {DAEMON_CAPABILITIES}")
    check(sc.get("seccompProfile", {}).get("type") == "Unconfined",
          f"{where}: daemon: seccompProfile must be Unconfined (bpf, perf_event_open)")
    check(sc.get("appArmorProfile", {}).get("type") == "Unconfined",
          f"{where}: daemon: appArmorProfile must be Unconfined (the default denies writes to "
          "/sys/fs/bpf)")
    for path in ("/run/enclosure", "/sys/fs/bpf", "/sys/fs/cgroup"):
        node, m = host_path_of(c, volumes, path)
        if check(node == path, f"{where}: the daemon does not mount the node's {path}"):
            check(not m.get("readOnly"), f"{where}: the daemon's {path} must be writable")
    cmd = c["command"] + c.get("args", [])
    args = cmd[2:]
    socket = option_value(args, "--socket")
    if not check(socket is not None, f"{where}: daemon command {cmd} has no --socket"):
        return None
    socket_node, _ = host_path_of(c, volumes, os.path.dirname(socket))
    check(socket_node is not None,
          f"{where}: the daemon's socket {socket} is not on a hostPath volume: no agent pod reaches it")
    # Pins and state must outlive the container: a restarted daemon re-adopts from them.
    pin_dir = option_value(args, "--pin-dir") or "/sys/fs/bpf/enclosure"
    node, _ = host_path_of(c, volumes, pin_dir)
    check(node is not None and node.startswith("/sys/fs/bpf/"),
          f"{where}: --pin-dir {pin_dir} is not in the node's /sys/fs/bpf")
    state_dir = option_value(args, "--state-dir") or "/run/enclosure/daemon"
    check(host_path_of(c, volumes, state_dir)[0] is not None,
          f"{where}: --state-dir {state_dir} is not on a hostPath volume: a restarted daemon "
          "would not find it")
    return socket_node and socket_node + "/" + os.path.basename(socket)


def check_daemonsets(docs):
    """Checks the collector and the daemon; returns the node path of the daemon's socket."""
    collectors, daemons, sockets = 0, 0, []
    for where, doc in docs:
        if doc["kind"] != "DaemonSet":
            continue
        spec = doc["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec["containers"]:
            cmd = c.get("command", []) + c.get("args", [])
            if len(cmd) < 2 or os.path.basename(cmd[0]) != "enclosure":
                check(False, f"{where}: container {c['name']} does not run enclosure")
                continue
            if cmd[1] == "collect":
                collectors += 1
                check_collector(where, spec, c, volumes)
            elif cmd[1] == "daemon":
                daemons += 1
                sockets.append(check_daemon(where, spec, c, volumes))
            else:
                check(False, f"{where}: container {c['name']} runs `enclosure {cmd[1]}`")
    check(collectors == 1, f"expected one collector container in the DaemonSets, found {collectors}")
    check(daemons == 1, f"expected one daemon container in the DaemonSets, found {daemons}")
    return sockets[0] if len(sockets) == 1 else None


def check_launcher_privileges(at, spec, container):
    """What `enclosure run` needs to build the enclosure itself, as root on the node
    (agent-standalone.yaml)."""
    pod_sc = spec.get("securityContext", {})
    sc = container.get("securityContext", {})
    uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
    check(uid == 0, f"{at}: the launcher must run as uid 0 (runAsUser: 0), not {uid}")
    check(sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True,
          f"{at}: runAsNonRoot contradicts the launcher's uid 0")
    check(spec.get("hostUsers", True) is not False,
          f"{at}: hostUsers: false puts the launcher in a user namespace, where the kernel grants "
          "neither BPF nor writes to the node's cgroup tree")
    check(sc.get("privileged") is True,
          f"{at}: privileged must be true (the node's cgroup namespace and a writable "
          "/sys/fs/cgroup for the run's cgroup, and the capabilities the launcher uses)")
    check(sc.get("allowPrivilegeEscalation") is not False,
          f"{at}: Kubernetes refuses allowPrivilegeEscalation: false with privileged: true")
    check(sc.get("seccompProfile", {}).get("type") == "Unconfined",
          f"{at}: seccompProfile must be Unconfined (the default profile refuses unshare, mount, bpf)")
    check(sc.get("appArmorProfile", {}).get("type") == "Unconfined",
          f"{at}: appArmorProfile must be Unconfined (the default profile refuses mount)")
    check("procMount" not in sc, f"{at}: procMount needs hostUsers: false")


def check_unprivileged_launcher(at, spec, container, volumes, daemon, daemon_socket):
    """An `enclosure run --daemon PATH` in an unprivileged container (agent.yaml)."""
    pod_sc = spec.get("securityContext", {})
    sc = container.get("securityContext", {})
    uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
    check(uid is not None and uid != 0, f"{at}: with --daemon the launcher runs as a non-root uid, "
          f"not {uid}")
    check(sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, f"{at}: runAsNonRoot: true")
    check(sc.get("privileged") is not True, f"{at}: with --daemon nothing needs privileged: true")
    check(sc.get("allowPrivilegeEscalation") is False, f"{at}: allowPrivilegeEscalation: false")
    caps = sc.get("capabilities", {})
    check(caps.get("drop") == ["ALL"] and not caps.get("add"),
          f"{at}: the launcher needs no capability (drop: [ALL], nothing added)")
    for key in ("hostPID", "hostNetwork", "hostIPC"):
        check(spec.get(key) is not True, f"{at}: {key}: true is not needed with --daemon")
    check(spec.get("hostUsers") is False,
          f"{at}: hostUsers: false is missing (procMount: Unmasked needs it; and the daemon tells "
          "callers apart by their uid on the node)")
    check(sc.get("procMount") == "Unmasked",
          f"{at}: procMount: Unmasked is missing (the kernel refuses a fresh /proc in the "
          "enclosure's namespaces over the runtime's masked /proc)")
    check(sc.get("seccompProfile", {}).get("type") in ("Unconfined", "Localhost"),
          f"{at}: seccompProfile must be Unconfined or Localhost (the default refuses "
          "CLONE_NEWUSER, unshare, mount)")
    check(sc.get("appArmorProfile", {}).get("type") in ("Unconfined", "Localhost"),
          f"{at}: appArmorProfile must be Unconfined or Localhost (the default denies mount)")
    # The socket: the node path the daemon listens on, through a hostPath directory.
    node, m = host_path_of(container, volumes, daemon)
    if check(node is not None, f"{at}: --daemon {daemon} is not on a hostPath volume"):
        volume = volumes[m["name"]]
        check(volume["hostPath"].get("type") in ("Directory", "DirectoryOrCreate"),
              f"{at}: mount the socket's directory, not the socket file: a restarted daemon "
              "creates a new socket file")
        check(daemon_socket is None or node == daemon_socket,
              f"{at}: --daemon {daemon} is {node} on the node; the daemon listens on {daemon_socket}")


def check_agent_pod(where, ns, spec, configmaps, enclosure, help_text, daemon_socket):
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    found = {"daemon": 0, "standalone": 0}
    for c in spec["containers"]:
        cmd = c.get("command", []) + c.get("args", [])
        if len(cmd) < 2 or os.path.basename(cmd[0]) != "enclosure" or cmd[1] != "run":
            continue
        at = f"{where}: container {c['name']}"
        options, agent = parse_run(cmd[2:], at)
        for option in options:
            check(option in help_text, f"{at}: {option} is not in `enclosure run --help`")
        daemons = options.get("--daemon", [])
        if daemons:
            found["daemon"] += 1
            check(len(daemons) == 1, f"{at}: --daemon given {len(daemons)} times")
            check_unprivileged_launcher(at, spec, c, volumes, daemons[0], daemon_socket)
        else:
            found["standalone"] += 1
            check_launcher_privileges(at, spec, c)
        # The binary: in an emptyDir that an init container fills by copying `enclosure`.
        volume, rel = mounted_file(c, volumes, cmd[0])
        if check(volume is not None and "emptyDir" in volume,
                 f"{at}: {cmd[0]} is not on an emptyDir volume"):
            copied = False
            for init in spec.get("initContainers", []):
                for m in init.get("volumeMounts", []):
                    if m["name"] != volume["name"]:
                        continue
                    target = m["mountPath"].rstrip("/") + "/" + rel
                    words = init.get("command", []) + init.get("args", [])
                    if len(words) == 1 or (len(words) >= 3 and words[-2] == "-c"):
                        words = shlex.split(words[-1])
                    copied = copied or (
                        os.path.basename(words[0]) in ("cp", "install") and words[-1] == target
                        and os.path.basename(words[-2]) == "enclosure")
            check(copied, f"{at}: no init container copies enclosure to {cmd[0]}")
        # Events: JSON lines on standard error, for the log pipeline.
        check("-" in options.get("--events", []), f"{at}: --events - is missing")
        # The manifest: the file a ConfigMap volume puts at -m.
        manifests = options.get("--manifest", [])
        if not check(len(manifests) == 1, f"{at}: expected one -m, got {manifests}"):
            continue
        volume, key = mounted_file(c, volumes, manifests[0])
        if not check(volume is not None and "configMap" in volume,
                     f"{at}: {manifests[0]} is not on a ConfigMap volume"):
            continue
        if not check(key is not None, f"{at}: the ConfigMap volume {volume['name']} puts no file at "
                                      f"{manifests[0]}"):
            continue
        cm = configmaps.get((ns, volume["configMap"]["name"]))
        if not check(cm is not None, f"{at}: no ConfigMap {volume['configMap']['name']} in {ns}"):
            continue
        text = cm.get("data", {}).get(key)
        if not check(text is not None, f"{at}: ConfigMap {volume['configMap']['name']} has no {key}"):
            continue
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write(text)
        try:
            r = subprocess.run([enclosure, "check", f.name], capture_output=True, text=True)
            check(r.returncode == 0, f"{at}: enclosure check {key}: {r.stderr.strip()}")
        finally:
            os.unlink(f.name)
        try:
            manifest = json.loads(text)
        except json.JSONDecodeError as e:
            check(False, f"{at}: {key} is not JSON: {e}")
            continue
        if check(agent, f"{at}: no command after --"):
            tool = tool_for(agent[0], manifest.get("tools", []))
            check(tool is not None, f"{at}: {agent[0]!r} is not one of the manifest's tools")
        # The agent must not be root: as root the launcher would leave it uid 0, and in a user
        # namespace uid 0 holds every capability there.
        user = manifest.get("process", {}).get("user")
        check(isinstance(user, dict) and user.get("uid", 0) != 0,
              f"{at}: {key} sets no non-root /process/user; the agent would run as uid 0")
    return found


def main():
    enclosure, source = sys.argv[1], sys.argv[2]
    docs = load_documents(os.path.join(source, "examples", "kubernetes"))
    configmaps = {(d["metadata"].get("namespace", "default"), d["metadata"]["name"]): d
                  for _, d in docs if d["kind"] == "ConfigMap"}
    help_text = run_help(enclosure)
    commands = enclosure_commands(enclosure)
    for where, ns, spec in pod_specs(docs):
        check_enclosure_commands(where, spec, commands, enclosure)
    daemonsets = sum(1 for _, d in docs if d["kind"] == "DaemonSet")
    daemon_socket = check_daemonsets(docs)
    agents = {"daemon": 0, "standalone": 0}
    for where, ns, spec in pod_specs(docs):
        found = check_agent_pod(where, ns, spec, configmaps, enclosure, help_text, daemon_socket)
        for k in agents:
            agents[k] += found[k]
    check(agents["daemon"] >= 1, "no agent container runs `enclosure run --daemon` (agent.yaml)")
    for f in failures:
        print("FAIL:", f)
    print(f"kubernetes: {len(docs)} documents, {daemonsets} DaemonSet(s), agent containers: "
          f"{agents['daemon']} through the daemon, {agents['standalone']} standalone; "
          f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
