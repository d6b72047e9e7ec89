#!/usr/bin/env python3
"""The phases of launches through `enclosure daemon`, from a system-wide `perf trace` of a few
system calls (execve, clone3, connect, sendmsg, exit_group) taken while scripts/bench.sh ran
`enclosure run --daemon ... -- true` several times. Prints one Markdown table row per phase:
median, min and max in ms over the launches found.

Phases of one launch (P: the launcher, 1: the enclosure's pid 1, D: the daemon, A: the agent):
  start-up       P's execve until its connect to the daemon (loading, manifest, tools)
  daemon set-up  P's connect until its clone3 (hello, the run's cgroups and maps, events)
  namespaces     P's clone3 until it asks D to move pid 1 in (clone3 with every namespace)
  enter          that request until D's reply (cgroup migration, vm.memfd_noexec)
  view           the same request until pid 1 reports its mount view built (in parallel)
  agent set-up   the later of those two until A's execve (fork, Landlock, seccomp, credentials)
  agent          A's execve until its exit_group (/usr/bin/true itself)
  teardown       A's exit_group until P's (counters, the daemon's release, exit)

Usage: launch_phases.py PERF_TRACE_OUTPUT DAEMON_PID"""
import re
import statistics
import sys

LINE = re.compile(r"\s*([\d.]+) \(\s*[\d.]*\s*(?:ms)?\): (.*?)/(\d+) (\w+)\(")
PHASES = ["start-up", "daemon set-up", "namespaces", "enter", "view", "agent set-up", "agent",
          "teardown", "total"]


def events(path):
    """(time ms, comm, pid, syscall), in time order; continuation lines ("?") are left out."""
    out = []
    for line in open(path, errors="replace"):
        m = LINE.match(line)
        if m:
            out.append((float(m.group(1)), m.group(2), int(m.group(3)), m.group(4)))
    out.sort()
    return out


def first(evs, after, pred):
    for e in evs:
        if e[0] > after and pred(e):
            return e
    return None


def launch(evs, launcher, daemon):
    """The phase durations of the launch by `launcher`, or None when a mark is missing."""
    own = [e for e in evs if e[2] == launcher]
    execs = [e[0] for e in own if e[3] == "execve"]
    exits = [e[0] for e in own if e[3] == "exit_group"]
    connect = first(own, 0, lambda e: e[3] == "connect")
    clone = first(own, 0, lambda e: e[3] == "clone3")
    if not execs or not exits or not connect or not clone:
        return None
    enter = first(own, clone[0], lambda e: e[3] == "sendmsg")
    pid1 = first(evs, clone[0], lambda e: e[1] == "enclosure-init")
    if not enter or not pid1:
        return None
    reply = first(evs, enter[0], lambda e: e[2] == daemon and e[3] == "sendmsg")
    view = first(evs, clone[0], lambda e: e[2] == pid1[2] and e[3] == "sendmsg")
    agent_exit = first(evs, clone[0], lambda e: e[1] == "true" and e[3] == "exit_group")
    if not reply or not view or not agent_exit:
        return None
    agent_exec = [e[0] for e in evs if e[2] == agent_exit[2] and e[3] == "execve"]
    if not agent_exec:
        return None
    in_order = [execs[-1], connect[0], clone[0], enter[0], max(reply[0], view[0]),
                agent_exec[-1], agent_exit[0], exits[-1]]
    if in_order != sorted(in_order):
        return None
    return {"start-up": connect[0] - execs[-1], "daemon set-up": clone[0] - connect[0],
            "namespaces": enter[0] - clone[0], "enter": reply[0] - enter[0],
            "view": view[0] - enter[0], "agent set-up": agent_exec[-1] - max(reply[0], view[0]),
            "agent": agent_exit[0] - agent_exec[-1], "teardown": exits[-1] - agent_exit[0],
            "total": exits[-1] - execs[-1]}


def main():
    path, daemon = sys.argv[1], int(sys.argv[2])
    evs = events(path)
    launchers = []
    for e in evs:
        if e[3] == "connect" and e[2] != daemon and e[1] != "enclosure-init" and \
                e[2] not in launchers:
            launchers.append(e[2])
    rows = [r for r in (launch(evs, p, daemon) for p in launchers) if r]
    if not rows:
        print("| (no complete launch in the trace) | | | |")
        return 1
    for phase in PHASES:
        v = [r[phase] for r in rows]
        print("| %s | %.2f | %.2f | %.2f |" % (phase, statistics.median(v), min(v), max(v)))
    print("| launches traced | %d | | |" % len(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
