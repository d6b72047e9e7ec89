#!/usr/bin/env python3
"""Checks examples/systemd/: `systemd-analyze verify` accepts every unit without a warning (no
running systemd is needed: --man=no --generators=no, with the units' /usr/bin/enclosure pointed at
the binary under test, since verify requires ExecStart's program to exist), and the units agree
with each other and with the binary: the collector listens where its socket unit listens and where
the agent template sends events, each ExecStart's command and options exist in `enclosure --help`,
and the units that place processes into cgroups of their own have Delegate=yes. The daemon unit
(`enclosure daemon`) is Type=notify, listens on /run/enclosure/daemon.sock inside its preserved
runtime directory (the state its next instance re-adopts), keeps exactly the capabilities the
daemon uses, and has none of the hardening that would make cgroupfs or bpffs read-only or hide its
callers' /proc entries; the root agent template does not depend on the daemon (a root launcher
does not use it). The collector signs its log with a key loaded as a credential (--sign-key
%d/..., LoadCredential=).

Usage: systemd_units_test.py ENCLOSURE_BINARY SOURCE_DIR"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

INSTALLED_BINARY = "/usr/bin/enclosure"
UNITS = ["enclosure-collector.socket", "enclosure-collector.service", "enclosure-daemon.service",
         "enclosed-agent@.service"]
DAEMON_SOCKET = "/run/enclosure/daemon.sock"

failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
    return condition


def parse_unit(path):
    """{section: {key: [values]}}"""
    sections, current = {}, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                current = sections.setdefault(line[1:-1], {})
                continue
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(unit, section, key, name):
    values = unit.get(section, {}).get(key, [])
    check(len(values) == 1, f"{name}: expected one {section}.{key}, got {values}")
    return values[0] if values else ""


def load_units(src):
    """The parsed units of examples/systemd/, checking that it holds exactly UNITS."""
    present = sorted(n for n in os.listdir(src) if not n.startswith("."))
    check(present == sorted(UNITS), f"{src} holds {present}, expected {sorted(UNITS)}")
    units = {}
    for name in UNITS:
        path = os.path.join(src, name)
        if check(os.path.exists(path), f"{path} is missing"):
            units[name] = parse_unit(path)
    return units


def check_installed_binary_path(name, text):
    """Every Exec line that runs enclosure runs it where the package installs it."""
    for line in text.splitlines():
        if line.startswith(("ExecStart=", "ExecStartPre=", "ExecStop=")):
            program = line.split("=", 1)[1].split()[0].lstrip("-@:+!")
            if "enclosure" in program:
                check(program == INSTALLED_BINARY,
                      f"{name}: {program} is not where the package installs enclosure "
                      f"({INSTALLED_BINARY})")


def check_systemd_verify(analyze, enclosure, src):
    """`systemd-analyze verify` accepts every unit, with the binary under test in place of the
    installed one (verify requires ExecStart's program to exist)."""
    with tempfile.TemporaryDirectory() as tmp:
        for name in UNITS:
            with open(os.path.join(src, name), encoding="utf-8") as f:
                text = f.read()
            check_installed_binary_path(name, text)
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                f.write(text.replace(INSTALLED_BINARY, enclosure))
        targets = [os.path.join(tmp, n) for n in UNITS if "@." not in n]
        targets.append(os.path.join(tmp, "enclosed-agent@report-agent.service"))
        r = subprocess.run([analyze, "verify", "--man=no", "--generators=no", *targets],
                           capture_output=True, text=True, cwd=tmp)
        output = (r.stdout + r.stderr).strip()
        check(r.returncode == 0 and not output,
              f"systemd-analyze verify: exit {r.returncode}\n{output}")


def known_commands(enclosure):
    """The commands `enclosure --help` lists."""
    help_top = subprocess.run([enclosure, "--help"], capture_output=True, text=True).stdout
    known = set(re.findall(r"^  ([a-z]+) ", help_top, re.M))
    check(known, "enclosure --help lists no commands")
    return known


def exec_start(units, name, enclosure, known):
    """(command, arguments) of a unit's ExecStart, checking that the command and each of its
    options exist in the binary's --help."""
    words = shlex.split(one(units.get(name, {}), "Service", "ExecStart", name))
    check(len(words) >= 2 and words[0] == INSTALLED_BINARY, f"{name}: ExecStart {words}")
    if len(words) < 2:
        return [], []
    sub = words[1]
    if sub in known:
        help_text = subprocess.run([enclosure, sub, "--help"], capture_output=True,
                                   text=True).stdout
        for w in words[2:]:
            if w == "--":
                break
            if w.startswith("-") and w != "-":
                check(w.split("=")[0] in help_text,
                      f"{name}: `enclosure {sub}` has no option {w}")
    else:
        check(False, f"{name}: enclosure has no command {sub!r}")
    return sub, words[2:]


def option(args, flag):
    return args[args.index(flag) + 1] if flag in args and args.index(flag) + 1 < len(args) else None


def check_signing_credential(collector, args):
    """The signing key comes from a systemd credential (README "Signed heads"): --sign-key names
    the copy in the credentials directory (%d), LoadCredential= the root-only key file."""
    key = option(args, "--sign-key") or ""
    check(key.startswith("%d/"), f"enclosure-collector.service: --sign-key {key!r} is not in %d")
    name = key[len("%d/"):]
    credentials = collector.get("Service", {}).get("LoadCredential", [])
    check(f"{name}:/etc/enclosure/{name}" in credentials,
          f"enclosure-collector.service: no LoadCredential={name}:/etc/enclosure/{name} "
          f"({credentials})")


def check_collector(units, enclosure, known):
    """The collector listens where its socket unit listens; returns that path."""
    socket = units.get("enclosure-collector.socket", {})
    listen = one(socket, "Socket", "ListenStream", "enclosure-collector.socket")
    sub, args = exec_start(units, "enclosure-collector.service", enclosure, known)
    check(sub == "collect", f"enclosure-collector.service runs {sub!r}")
    check(args == ["--listen", "unix:/run/enclosure/collector.sock", "--audit-log",
                   "/var/log/enclosure/audit.jsonl", "--sign-key", "%d/audit-signing.pem"],
          f"enclosure-collector.service: {args}")
    check_signing_credential(units.get("enclosure-collector.service", {}), args)
    check(option(args, "--listen") == "unix:" + listen,
          f"the collector listens on {option(args, '--listen')}, its socket unit on {listen}")
    collector = units.get("enclosure-collector.service", {})
    check("enclosure-collector.socket" in " ".join(collector.get("Unit", {}).get("Requires", [])),
          "enclosure-collector.service does not require its socket")
    return listen


def check_agent_template(units, enclosure, known, listen):
    """The agent template runs its agent under a root launcher that sends events to the
    collector, with its own cgroups and no dependency on the daemon."""
    sub, args = exec_start(units, "enclosed-agent@.service", enclosure, known)
    check(sub == "run", f"enclosed-agent@.service runs {sub!r}")
    check(option(args, "-m") == "/etc/enclosure/%i.json", f"enclosed-agent@.service: -m {option(args, '-m')}")
    check(option(args, "--events") == "unix:" + listen,
          f"enclosed-agent@.service sends events to {option(args, '--events')}, not to {listen}")
    check("--" in args and len(args) > args.index("--") + 1,
          "enclosed-agent@.service: no agent command after --")

    agent = units.get("enclosed-agent@.service", {})
    check(agent.get("Service", {}).get("Delegate") == ["yes"],
          "enclosed-agent@.service: Delegate=yes is missing")
    # The template's launcher builds the whole enclosure itself, as root; a root launcher does
    # not use the daemon, so a stopped daemon must not stop (or hold back) the agents.
    check(agent.get("Service", {}).get("User") == ["root"],
          "enclosed-agent@.service: the launcher must run as root (User=root)")
    check("--daemon" not in args, "enclosed-agent@.service: a root launcher needs no --daemon")
    for key in ("Requires", "BindsTo", "PartOf", "Requisite"):
        deps = " ".join(agent.get("Unit", {}).get(key, []))
        check("enclosure-daemon" not in deps,
              f"enclosed-agent@.service: {key}={deps}: a root launcher does not use the daemon")


def check_daemon_service(units, enclosure, known, listen):
    """The daemon is Type=notify, listens on DAEMON_SOCKET inside its preserved runtime directory
    and restarts on failure, as root."""
    daemon = units.get("enclosure-daemon.service", {})
    dsvc = daemon.get("Service", {})
    sub, args = exec_start(units, "enclosure-daemon.service", enclosure, known)
    check(sub == "daemon", f"enclosure-daemon.service runs {sub!r}")
    check(option(args, "--socket") == DAEMON_SOCKET,
          f"enclosure-daemon.service: --socket {option(args, '--socket')}, expected {DAEMON_SOCKET} "
          "(where a non-root `enclosure run` looks without --daemon)")
    check(dsvc.get("Type") == ["notify"], f"enclosure-daemon.service: Type={dsvc.get('Type')}, "
          "expected notify (READY=1 when the socket listens)")
    # The socket and the state directory (/run/enclosure/daemon) survive a restart: the next
    # daemon re-adopts the running enclosures from that state.
    check(dsvc.get("RuntimeDirectory") == ["enclosure"],
          f"enclosure-daemon.service: RuntimeDirectory={dsvc.get('RuntimeDirectory')}")
    check(os.path.dirname(DAEMON_SOCKET) == "/run/" + "".join(dsvc.get("RuntimeDirectory", [])),
          "enclosure-daemon.service: the socket is not in the runtime directory")
    check(dsvc.get("RuntimeDirectoryPreserve") == ["yes"],
          "enclosure-daemon.service: RuntimeDirectoryPreserve=yes is missing: a restart would "
          "remove the state the next daemon re-adopts (and the collector's socket)")
    check(os.path.dirname(listen) == os.path.dirname(DAEMON_SOCKET),
          f"the collector's socket {listen} and the daemon's {DAEMON_SOCKET} are not in one directory")
    check(dsvc.get("Restart") == ["on-failure"],
          f"enclosure-daemon.service: Restart={dsvc.get('Restart')}, expected on-failure")
    check(dsvc.get("KillMode", ["control-group"]) != ["none"],
          "enclosure-daemon.service: KillMode=none leaves the daemon's own processes behind")
    check(dsvc.get("User") == ["root"], "enclosure-daemon.service: the daemon runs as root (User=root)")


def check_daemon_privileges(units):
    """The daemon keeps exactly the capabilities it uses and none of the hardening that would
    make cgroupfs or bpffs read-only or hide its callers' /proc entries."""
    daemon = units.get("enclosure-daemon.service", {})
    dsvc = daemon.get("Service", {})
    daemon_caps = set(one(daemon, "Service", "CapabilityBoundingSet",
                          "enclosure-daemon.service").split())
    # BPF, PERFMON, NET_ADMIN: loading and attaching the programs; CHOWN: each run's cgroup is
    # given to the caller's group; KILL: the null signal through the caller's pidfd (another
    # uid); SYS_ADMIN: named by the daemon's contract. The unit's comment justifies each.
    expected_caps = {"CAP_SYS_ADMIN", "CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON", "CAP_CHOWN",
                     "CAP_KILL"}
    check(daemon_caps == expected_caps,
          f"enclosure-daemon.service: CapabilityBoundingSet {sorted(daemon_caps)}, expected "
          f"{' '.join(sorted(expected_caps))}")
    check(dsvc.get("LimitMEMLOCK") == ["infinity"] or "CAP_SYS_RESOURCE" in daemon_caps,
          "enclosure-daemon.service: LimitMEMLOCK=infinity (or CAP_SYS_RESOURCE) for kernels "
          "that charge BPF memory to RLIMIT_MEMLOCK")
    # Hardening that would break the daemon: cgroupfs and bpffs must stay writable, its callers'
    # /proc entries visible.
    for key, bad in (("ProtectKernelTunables", "yes"), ("ProtectControlGroups", "yes"),
                     ("ProtectProc", "invisible"), ("ProtectProc", "noaccess"),
                     ("ProtectProc", "ptraceable")):
        check(bad not in dsvc.get(key, []), f"enclosure-daemon.service: {key}={bad} breaks the daemon")
    check(not any(p.startswith(("/sys", "-/sys")) for k in ("ReadOnlyPaths", "InaccessiblePaths")
                  for p in " ".join(dsvc.get(k, [])).split()),
          "enclosure-daemon.service: /sys must stay writable (cgroupfs, bpffs)")
    check(not dsvc.get("SystemCallFilter"),
          "enclosure-daemon.service: a SystemCallFilter= would stand between the daemon and bpf()")


def check_agent_and_collector_capabilities(units):
    caps = set(one(units.get("enclosed-agent@.service", {}), "Service", "CapabilityBoundingSet",
                   "enclosed-agent@.service").split())
    check(caps == {"CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_BPF", "CAP_PERFMON", "CAP_SETUID",
                   "CAP_SETGID", "CAP_SETPCAP", "CAP_KILL", "CAP_DAC_OVERRIDE"},
          f"enclosed-agent@.service: CapabilityBoundingSet {sorted(caps)}")
    collector = units.get("enclosure-collector.service", {})
    check(one(collector, "Service", "CapabilityBoundingSet", "enclosure-collector.service") == "",
          "enclosure-collector.service must have no capability")


def main():
    enclosure, source = os.path.abspath(sys.argv[1]), sys.argv[2]
    src = os.path.join(source, "examples", "systemd")
    analyze = shutil.which("systemd-analyze")
    if not check(analyze is not None,
                 "systemd-analyze is not installed (Debian package systemd; scripts/install-deps.sh)"):
        return report()
    units = load_units(src)
    check_systemd_verify(analyze, enclosure, src)
    known = known_commands(enclosure)
    listen = check_collector(units, enclosure, known)
    check_agent_template(units, enclosure, known, listen)
    check_daemon_service(units, enclosure, known, listen)
    check_daemon_privileges(units)
    check_agent_and_collector_capabilities(units)
    return report()


def report():
    for f in failures:
        print("FAIL:", f)
    print(f"systemd units: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
