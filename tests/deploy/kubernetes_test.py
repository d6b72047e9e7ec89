#!/usr/bin/env python3
"""Checks examples/kubernetes/: every YAML document parses; every container that runs `enclosure`
runs a command the binary has (`enclosure --help`); the node DaemonSet runs the collector,
unprivileged and without capabilities; each agent pod's manifest (from its ConfigMap) passes
`enclosure check`, and the pod's command is a valid `enclosure run` invocation: the binary is the
one its init container copies, -m names the file the ConfigMap volume puts there, --events goes to
standard error, and the command after -- is one of the manifest's tools. The launcher in the agent
container has what it needs to build the enclosure itself (this release has no node daemon): uid 0
in the node's user namespace (no hostUsers: false), privileged (the node's cgroup namespace and a
writable cgroup tree, all the capabilities it uses), seccomp and AppArmor Unconfined; and the agent
inside does not run as uid 0 (the manifest's process.user).

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
                 "--ring-buffer"}
FLAG_OPTIONS = set()


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


def check_daemonset(where, spec):
    containers = {c["name"]: c for c in spec["containers"]}
    for name, c in containers.items():
        sc = c.get("securityContext", {})
        check(sc.get("privileged") is False, f"{where}: {name}: privileged must be false, explicitly")
        check(sc.get("allowPrivilegeEscalation") is False,
              f"{where}: {name}: allowPrivilegeEscalation must be false")
        check(sc.get("capabilities", {}).get("drop") == ["ALL"],
              f"{where}: {name}: capabilities must drop ALL")
    host_paths = {v["name"]: v["hostPath"]["path"] for v in spec.get("volumes", [])
                  if "hostPath" in v}
    collector = containers.get("collector")
    check(sorted(containers) == ["collector"],
          f"{where}: containers {sorted(containers)}, expected the collector alone")
    if check(collector is not None, f"{where}: no collector container"):
        check(not collector["securityContext"]["capabilities"].get("add"),
              f"{where}: the collector needs no capability")
        cmd = collector["command"]
        check(os.path.basename(cmd[0]) == "enclosure" and cmd[1] == "collect",
              f"{where}: collector command {cmd}")
        args = cmd[2:]
        listen = args[args.index("--listen") + 1] if "--listen" in args else None
        log = args[args.index("--audit-log") + 1] if "--audit-log" in args else None
        check(listen == "unix:/run/enclosure/collector.sock", f"{where}: collector --listen {listen}")
        mounts = {m["mountPath"]: m["name"] for m in collector.get("volumeMounts", [])}
        check(host_paths.get(mounts.get("/run/enclosure")) == "/run/enclosure",
              f"{where}: collector does not mount the node's /run/enclosure")
        check(log is not None and host_paths.get(mounts.get(os.path.dirname(log))) is not None,
              f"{where}: the audit log {log} is not on a hostPath volume")


def check_launcher_privileges(at, spec, container):
    """What `enclosure run` needs to build the enclosure itself, as root on the node."""
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


def check_agent_pod(where, ns, spec, configmaps, enclosure, help_text):
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    found = 0
    for c in spec["containers"]:
        cmd = c.get("command", []) + c.get("args", [])
        if len(cmd) < 2 or os.path.basename(cmd[0]) != "enclosure" or cmd[1] != "run":
            continue
        found += 1
        at = f"{where}: container {c['name']}"
        check_launcher_privileges(at, spec, c)
        options, agent = parse_run(cmd[2:], at)
        for option in options:
            check(option in help_text, f"{at}: {option} is not in `enclosure run --help`")
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
        # The launcher is root; the agent must not be (process.user, else it keeps uid 0).
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
    daemonsets = agents = 0
    for where, doc in docs:
        if doc["kind"] == "DaemonSet":
            daemonsets += 1
            check_daemonset(where, doc["spec"]["template"]["spec"])
    for where, ns, spec in pod_specs(docs):
        agents += check_agent_pod(where, ns, spec, configmaps, enclosure, help_text)
    check(daemonsets == 1, f"expected one DaemonSet, found {daemonsets}")
    check(agents >= 1, "no agent container runs `enclosure run`")
    for f in failures:
        print("FAIL:", f)
    print(f"kubernetes: {len(docs)} documents, {daemonsets} DaemonSet, {agents} agent container(s), "
          f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
