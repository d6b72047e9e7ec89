#!/usr/bin/env python3
"""Checks the collector's metrics page with the tools that will read it: `promtool check metrics`
(Debian package prometheus) and the Python client's classic parser take the Prometheus text
format 0.0.4 that a plain GET returns; the Python client's OpenMetrics parser takes the page that
an `Accept: application/openmetrics-text` request returns (it ends with `# EOF`). Both pages are
checked before any run (every known event type, deny section and budget already has a series at
0) and after one: `enclosure collect --listen unix:... --audit-log ... --metrics 127.0.0.1:0`, and
`enclosure run --events unix:...` of examples/agents/report-agent.json, whose agent is denied
ptrace, so the page shows a start, a deny, an exit, the run's duration and its manifest name.
Needs root (the run builds an enclosure); exits 77 (skipped) otherwise, and fails under CI=true.

Usage: metrics_test.py ENCLOSURE_BINARY SOURCE_DIR"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

# The Python client is Debian's (python3-prometheus-client); the interpreter running this test
# may be another one, without it: then the test runs again under Debian's.
try:
    from prometheus_client.openmetrics.parser import \
        text_string_to_metric_families as openmetrics_families
    from prometheus_client.parser import text_string_to_metric_families as classic_families
except ImportError:
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != \
            os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print("FAIL: the Python Prometheus client is not installed (python3-prometheus-client)")
    sys.exit(1)

OPENMETRICS_ACCEPT = ("application/openmetrics-text;version=1.0.0,"
                      "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
EVENT_TYPES = ["start", "exec", "tool_call", "open", "connect", "dns", "deny", "budget", "rule",
               "anomaly", "cost", "lost", "suppressed", "window", "exit"]
DENY_SECTIONS = ["syscalls", "network", "rules", "tools"]
BUDGETS = ["wall_clock", "cpu_time", "tool_calls", "syscalls", "processes", "memory",
           "egress_bytes", "cost_usd", "max_calls"]

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print(f"FAIL: {message}")
    return condition


def scrape(url, accept=None):
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers.get("Content-Type", ""), response.read().decode("utf-8")


def samples(families):
    """{(sample name, frozenset of labels): value} of parsed families."""
    out = {}
    for family in families:
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def check_page(url, what):
    """Checks both formats of the page; returns the samples of the classic one."""
    content_type, text = scrape(url)
    check(content_type == "text/plain; version=0.0.4; charset=utf-8",
          f"{what}: Content-Type {content_type!r}")
    check("# EOF" not in text, f"{what}: the Prometheus text format has no # EOF")
    promtool = shutil.which("promtool")
    if check(promtool is not None, "promtool is not installed (Debian package prometheus)"):
        r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True)
        check(r.returncode == 0 and not (r.stdout + r.stderr).strip(),
              f"{what}: promtool check metrics: {(r.stdout + r.stderr).strip()}")
    classic = {}
    try:
        families = list(classic_families(text))
        classic = samples(families)
        untyped = [f.name for f in families if f.type in ("untyped", "unknown")]
        check(not untyped, f"{what}: families without a TYPE under the classic parser: {untyped}")
    except ValueError as e:
        check(False, f"{what}: the classic parser refuses the page: {e}")

    content_type, om_text = scrape(url, OPENMETRICS_ACCEPT)
    check(content_type == "application/openmetrics-text; version=1.0.0; charset=utf-8",
          f"{what}: OpenMetrics Content-Type {content_type!r}")
    check(om_text.endswith("# EOF\n"), f"{what}: the OpenMetrics page does not end with # EOF")
    try:
        om = samples(openmetrics_families(om_text))
        check(om == classic, f"{what}: the two formats disagree: "
              f"{sorted(set(om.items()) ^ set(classic.items()))[:5]}")
    except ValueError as e:
        check(False, f"{what}: the OpenMetrics parser refuses the page: {e}")
    return classic


def value(page, name, **labels):
    return page.get((name, frozenset(labels.items())))


def start_collector(enclosure, work):
    err = open(os.path.join(work, "collector.err"), "w+")
    collector = subprocess.Popen(
        [enclosure, "collect", "--listen", "unix:" + os.path.join(work, "collector.sock"),
         "--audit-log", os.path.join(work, "audit.log"), "--metrics", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and collector.poll() is None:
        err.seek(0)
        m = re.search(r"http://127\.0\.0\.1:[0-9]+/metrics", err.read())
        if m:
            return collector, m.group(0)
        time.sleep(0.05)
    err.seek(0)
    collector.kill()
    raise SystemExit(f"FAIL: the collector did not start: {err.read()}")


def run_report_agent(enclosure, source, work):
    """examples/agents/report-agent.json as scripts/demo.sh runs it, events to the collector."""
    for d in ("task", "out"):
        os.makedirs(os.path.join(work, d))
    shutil.copy(os.path.join(source, "examples", "agents", "report_agent.py"),
                os.path.join(work, "agent.py"))
    with open(os.path.join(work, "task", "notes.txt"), "w") as f:
        f.write("Revenue grew in all regions.\n")
    os.chmod(work, 0o755)
    os.chmod(os.path.join(work, "task"), 0o755)
    os.chmod(os.path.join(work, "task", "notes.txt"), 0o644)
    os.chmod(os.path.join(work, "agent.py"), 0o644)
    os.chown(os.path.join(work, "out"), 65534, 65534)
    return subprocess.run(
        [enclosure, "run", "-m", os.path.join(source, "examples", "agents", "report-agent.json"),
         "--context", "task=" + os.path.join(work, "task"),
         "--context", "out=" + os.path.join(work, "out"),
         "--context", "agent=" + os.path.join(work, "agent.py"),
         "--events", "unix:" + os.path.join(work, "collector.sock"), "--audit-required",
         "--", "python3", os.path.join(work, "agent.py")],
        capture_output=True, text=True, timeout=120)


def main():
    enclosure, source = sys.argv[1], sys.argv[2]
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            print("FAIL: CI=true and not root: this test must run, not skip")
            return 1
        print("SKIP: enclosure run needs root here")
        return 77
    with tempfile.TemporaryDirectory(prefix="enclosure-metrics-") as work:
        collector, url = start_collector(enclosure, work)
        try:
            before = check_page(url, "before any run")
            for t in EVENT_TYPES:
                check(value(before, "enclosure_events_total", type=t) == 0,
                      f"no zero series enclosure_events_total{{type={t!r}}}")
            for s in DENY_SECTIONS:
                check(value(before, "enclosure_denies_total", section=s) == 0,
                      f"no zero series enclosure_denies_total{{section={s!r}}}")
            for b in BUDGETS:
                check(value(before, "enclosure_budget_terminations_total", budget=b) == 0,
                      f"no zero series enclosure_budget_terminations_total{{budget={b!r}}}")
            version = subprocess.run([enclosure, "--version"], capture_output=True,
                                     text=True).stdout.split()[1]
            check(value(before, "enclosure_build_info", version=version) == 1,
                  f"no enclosure_build_info{{version={version!r}}} 1")

            r = run_report_agent(enclosure, source, work)
            check(r.returncode == 0, f"enclosure run: exit {r.returncode}: {r.stderr}")
            after = check_page(url, "after one run")
            name = "report-agent"
            check(value(after, "enclosure_runs_started_total", manifest=name) == 1,
                  f"enclosure_runs_started_total{{manifest={name!r}}} is not 1")
            check(value(after, "enclosure_runs_finished_total", manifest=name) == 1,
                  f"enclosure_runs_finished_total{{manifest={name!r}}} is not 1")
            check(value(after, "enclosure_events_total", type="start") == 1, "one start record")
            check(value(after, "enclosure_events_total", type="exit") == 1, "one exit record")
            check((value(after, "enclosure_denies_total", section="syscalls") or 0) >= 1,
                  "the agent's ptrace is not counted as a syscalls deny")
            check(value(after, "enclosure_run_duration_seconds_count") == 1,
                  "enclosure_run_duration_seconds_count is not 1")
            check(value(after, "enclosure_run_duration_seconds_bucket", le="+Inf") == 1,
                  "enclosure_run_duration_seconds_bucket{le=\"+Inf\"} is not 1")
            check((value(after, "enclosure_run_duration_seconds_sum") or 0) > 0,
                  "enclosure_run_duration_seconds_sum is not positive")
            check(value(after, "enclosure_runs_active") == 0, "enclosure_runs_active is not 0")
        finally:
            collector.terminate()
            collector.wait(timeout=10)
    print(f"metrics: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
