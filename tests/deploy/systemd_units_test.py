#!/usr/bin/env python3
"""Checks examples/systemd/: `systemd-analyze verify` accepts every unit without a warning (no
running systemd is needed: --man=no --generators=no, with the units' /usr/bin/enclosure pointed at
the binary under test, since verify requires ExecStart's program to exist), and the units agree
with each other and with the binary: the collector listens where its socket unit listens and where
the agent template sends events, each ExecStart's command and options exist in `enclosure --help`,
and the units that place processes into cgroups of their own have Delegate=yes.

Usage: systemd_units_test.py ENCLOSURE_BINARY SOURCE_DIR"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

INSTALLED_BINARY = "/usr/bin/enclosure"
UNITS = ["enclosure-collector.socket", "enclosure-collector.service", "enclosed-agent@.service"]

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


def main():
    enclosure, source = os.path.abspath(sys.argv[1]), sys.argv[2]
    src = os.path.join(source, "examples", "systemd")
    analyze = shutil.which("systemd-analyze")
    if not check(analyze is not None,
                 "systemd-analyze is not installed (Debian package systemd; scripts/install-deps.sh)"):
        return report()
    present = sorted(n for n in os.listdir(src) if not n.startswith("."))
    check(present == sorted(UNITS), f"{src} holds {present}, expected {sorted(UNITS)}")
    units = {}
    for name in UNITS:
        path = os.path.join(src, name)
        if check(os.path.exists(path), f"{path} is missing"):
            units[name] = parse_unit(path)

    with tempfile.TemporaryDirectory() as tmp:
        for name in UNITS:
            with open(os.path.join(src, name), encoding="utf-8") as f:
                text = f.read()
            for line in text.splitlines():
                if line.startswith(("ExecStart=", "ExecStartPre=", "ExecStop=")):
                    program = line.split("=", 1)[1].split()[0].lstrip("-@:+!")
                    if "enclosure" in program:
                        check(program == INSTALLED_BINARY,
                              f"{name}: {program} is not where the package installs enclosure "
                              f"({INSTALLED_BINARY})")
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                f.write(text.replace(INSTALLED_BINARY, enclosure))
        targets = [os.path.join(tmp, n) for n in UNITS if "@." not in n]
        targets.append(os.path.join(tmp, "enclosed-agent@report-agent.service"))
        r = subprocess.run([analyze, "verify", "--man=no", "--generators=no", *targets],
                           capture_output=True, text=True, cwd=tmp)
        output = (r.stdout + r.stderr).strip()
        check(r.returncode == 0 and not output,
              f"systemd-analyze verify: exit {r.returncode}\n{output}")

    help_top = subprocess.run([enclosure, "--help"], capture_output=True, text=True).stdout
    known = set(re.findall(r"^  ([a-z]+) ", help_top, re.M))
    check(known, "enclosure --help lists no commands")

    def exec_start(name):
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

    socket = units.get("enclosure-collector.socket", {})
    listen = one(socket, "Socket", "ListenStream", "enclosure-collector.socket")
    sub, args = exec_start("enclosure-collector.service")
    check(sub == "collect", f"enclosure-collector.service runs {sub!r}")
    check(args == ["--listen", "unix:/run/enclosure/collector.sock", "--audit-log",
                   "/var/log/enclosure/audit.jsonl"], f"enclosure-collector.service: {args}")
    check(option(args, "--listen") == "unix:" + listen,
          f"the collector listens on {option(args, '--listen')}, its socket unit on {listen}")
    collector = units.get("enclosure-collector.service", {})
    check("enclosure-collector.socket" in " ".join(collector.get("Unit", {}).get("Requires", [])),
          "enclosure-collector.service does not require its socket")

    sub, args = exec_start("enclosed-agent@.service")
    check(sub == "run", f"enclosed-agent@.service runs {sub!r}")
    check(option(args, "-m") == "/etc/enclosure/%i.json", f"enclosed-agent@.service: -m {option(args, '-m')}")
    check(option(args, "--events") == "unix:" + listen,
          f"enclosed-agent@.service sends events to {option(args, '--events')}, not to {listen}")
    check("--" in args and len(args) > args.index("--") + 1,
          "enclosed-agent@.service: no agent command after --")

    agent = units.get("enclosed-agent@.service", {})
    check(agent.get("Service", {}).get("Delegate") == ["yes"],
          "enclosed-agent@.service: Delegate=yes is missing")
    # There is no node daemon: the launcher builds the whole enclosure itself, as root.
    check(agent.get("Service", {}).get("User") == ["root"],
          "enclosed-agent@.service: the launcher must run as root (User=root)")
    for name in UNITS:
        unit = units.get(name, {})
        for key in ("After", "Wants", "Requires", "BindsTo", "PartOf"):
            deps = " ".join(unit.get("Unit", {}).get(key, []))
            check("daemon" not in deps, f"{name}: {key}={deps} names a daemon this release lacks")
    caps = set(one(units.get("enclosed-agent@.service", {}), "Service", "CapabilityBoundingSet",
                   "enclosed-agent@.service").split())
    check(caps == {"CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_BPF", "CAP_PERFMON", "CAP_SETUID",
                   "CAP_SETGID", "CAP_SETPCAP", "CAP_KILL", "CAP_DAC_OVERRIDE"},
          f"enclosed-agent@.service: CapabilityBoundingSet {sorted(caps)}")
    check(one(collector, "Service", "CapabilityBoundingSet", "enclosure-collector.service") == "",
          "enclosure-collector.service must have no capability")
    return report()


def report():
    for f in failures:
        print("FAIL:", f)
    print(f"systemd units: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
