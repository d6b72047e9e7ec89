#!/usr/bin/env python3
"""Runs the log shipper of examples/shipping (rsyslog: imfile, mmjsonparse, ECS documents) against
a live collector and checks what a SIEM would receive. The collector (`enclosure collect`, signed
heads, rotation every 8 KiB) takes the events of a few enclosures that open files, exec, connect
to a loopback port where nothing listens (admitted, refused by TCP) and to one the manifest does
not admit (denied); rsyslogd tails its log with the example's configuration, unchanged but for
its paths and with output-file.conf as its output, while the log rotates under it. Then:
- every line of every log file (live and rotated) is in exactly one document;
- each document is JSON, and every field it maps has the name and value that
  `enclosure audit show --format ecs` gives the same record (matched by event.original);
- the event.original values, put back in chain order and cut into files at the rotation heads,
  pass `enclosure audit verify --key PUB.pem`; one altered value fails it.
Needs root (the runs build enclosures) and rsyslogd (Debian package rsyslog); exits 77 (skipped)
otherwise, and fails under CI=true.

Usage: shipper_test.py ENCLOSURE_BINARY SOURCE_DIR"""
import collections
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ZERO_HASH = "0" * 64
EXAMPLE_LOG_DIR = "/var/log/enclosure/"
EXAMPLE_STATE_DIR = "/var/lib/enclosure-shipper"
EXAMPLE_OUTPUT_INCLUDE = "/etc/enclosure/shipping/output-elasticsearch.conf"
EXAMPLE_OUTPUT_FILE = "/var/log/enclosure-shipper/ecs.ndjson"
EXAMPLE_CA = "/etc/enclosure/shipping/ca.pem"
LOG = "audit.jsonl"
# Fields the shipper adds that `audit show --format ecs` does not have: where it read the line.
SHIPPER_ONLY = {("host", "name"), ("log", "file", "path")}

AGENT = """import socket, subprocess
open('/usr/lib/os-release').read()
subprocess.run(['/usr/bin/true'])
for port in ({admitted}, {refused}):
    s = socket.socket()
    try:
        s.connect(('127.0.0.1', port))
    except OSError as e:
        print(port, e)
    s.close()
try:
    open('/etc/shadow')
except OSError as e:
    print(e)
"""

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print(f"FAIL: {message}")
    return condition


def free_port():
    """A loopback port nothing listens on (the kernel picked it, then it was closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_key(work):
    key, pub = os.path.join(work, "sign.pem"), os.path.join(work, "sign.pub")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key], check=True,
                   capture_output=True)
    os.chmod(key, 0o600)
    subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-out", pub], check=True,
                   capture_output=True)
    return key, pub


def write_config(source, work, output_include):
    """The example with this test's paths; returns the path of its copy."""
    example = os.path.join(source, "examples", "shipping")
    with open(os.path.join(example, "rsyslog-enclosure.conf")) as f:
        text = f.read()
    for old in (EXAMPLE_LOG_DIR, EXAMPLE_STATE_DIR, EXAMPLE_OUTPUT_INCLUDE):
        if not check(old in text, f"rsyslog-enclosure.conf no longer names {old}"):
            raise SystemExit(1)
    text = text.replace(EXAMPLE_LOG_DIR, os.path.join(work, "log") + "/")
    text = text.replace(EXAMPLE_STATE_DIR, os.path.join(work, "state"))
    text = text.replace(EXAMPLE_OUTPUT_INCLUDE, output_include)
    with open(os.path.join(example, "output-file.conf")) as f:
        output = f.read()
    check(EXAMPLE_OUTPUT_FILE in output, f"output-file.conf no longer writes {EXAMPLE_OUTPUT_FILE}")
    with open(os.path.join(work, "output-file.conf"), "w") as f:
        f.write(output.replace(EXAMPLE_OUTPUT_FILE, os.path.join(work, "out", "ecs.ndjson")))
    path = os.path.join(work, "rsyslog-" + os.path.basename(output_include))
    with open(path, "w") as f:
        f.write(text)
    return path


def validate_configs(source, work):
    """rsyslogd -N1 of the file variant, and of the Elasticsearch one where its module is."""
    config = write_config(source, work, os.path.join(work, "output-file.conf"))
    r = subprocess.run(["rsyslogd", "-N1", "-f", config], capture_output=True, text=True)
    check(r.returncode == 0, f"rsyslogd -N1 refuses the example: {r.stdout}{r.stderr}")
    es_module = subprocess.run(["sh", "-c", "ls /usr/lib/*/rsyslog/omelasticsearch.so"],
                               capture_output=True).returncode == 0
    if es_module:
        with open(os.path.join(source, "examples", "shipping", "output-elasticsearch.conf")) as f:
            output = f.read()
        check(EXAMPLE_CA in output, f"output-elasticsearch.conf no longer names {EXAMPLE_CA}")
        open(os.path.join(work, "ca.pem"), "w").close()
        with open(os.path.join(work, "output-elasticsearch.conf"), "w") as f:
            f.write(output.replace(EXAMPLE_CA, os.path.join(work, "ca.pem"))
                    .replace(EXAMPLE_STATE_DIR, os.path.join(work, "state")))
        es = write_config(source, work, os.path.join(work, "output-elasticsearch.conf"))
        r = subprocess.run(["rsyslogd", "-N1", "-f", es], capture_output=True, text=True)
        check(r.returncode == 0, f"rsyslogd -N1 refuses the Elasticsearch output: {r.stderr}")
    else:
        print("note: omelasticsearch is not installed (rsyslog-elasticsearch); its output "
              "file is not validated")
    return config


def start_collector(enclosure, work, key):
    err = open(os.path.join(work, "collector.err"), "w+")
    sock = os.path.join(work, "collector.sock")
    collector = subprocess.Popen(
        [enclosure, "collect", "--listen", "unix:" + sock,
         "--audit-log", os.path.join(work, "log", LOG), "--rotate-size", "8KiB",
         "--sign-key", key], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and collector.poll() is None:
        if os.path.exists(sock):
            return collector
        time.sleep(0.05)
    err.seek(0)
    collector.kill()
    collector.wait()
    raise SystemExit(f"FAIL: the collector did not start: {err.read()}")


def run_enclosures(enclosure, work, count):
    admitted, refused = free_port(), free_port()
    agent = os.path.join(work, "agent.py")
    with open(agent, "w") as f:
        f.write(AGENT.format(admitted=admitted, refused=refused))
    os.chmod(agent, 0o644)
    manifest = {
        "apiVersion": "enclosure/v1",
        "metadata": {"name": "shipper-test", "approved_by": "sec-review@example.com",
                     "reason": "CHG-18: shipper test"},
        "filesystem": {"read": ["/usr", "/lib", "/lib64", "/bin", agent]},
        "process": {"user": {"uid": 65534, "gid": 65534}, "env": {"pass": ["PATH"]}},
        "tools": [{"name": "python3", "path": "/usr/bin/python3"},
                  {"name": "true", "path": "/usr/bin/true"}],
        "network": {"mode": "filtered",
                    "egress": [{"cidr": "127.0.0.1/32", "ports": [admitted]}]},
        "audit": {"files": True},
        "budgets": {"wall_clock": "60s"}}
    path = os.path.join(work, "manifest.json")
    with open(path, "w") as f:
        json.dump(manifest, f)
    for _ in range(count):
        r = subprocess.run(
            [enclosure, "run", "-m", path, "--events",
             "unix:" + os.path.join(work, "collector.sock"), "--audit-required", "--",
             "python3", agent], capture_output=True, text=True, timeout=120)
        check(r.returncode == 0, f"enclosure run: exit {r.returncode}: {r.stderr}")
        check("Connection refused" in r.stdout, f"the admitted connect was not refused: {r.stdout}")


def log_files(work):
    """The collector's files, oldest first (audit.jsonl.N ... audit.jsonl.1, audit.jsonl)."""
    log = os.path.join(work, "log")
    rotated = sorted((int(n.rsplit(".", 1)[1]) for n in os.listdir(log)
                      if n.startswith(LOG + ".") and n.rsplit(".", 1)[1].isdigit()),
                     reverse=True)
    return [os.path.join(log, f"{LOG}.{n}") for n in rotated] + [os.path.join(log, LOG)]


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


def wait_for_documents(output, expected, deadline_s):
    deadline = time.monotonic() + deadline_s
    count = 0
    while time.monotonic() < deadline:
        if os.path.exists(output):
            with open(output, "rb") as f:
                count = f.read().count(b"\n")
            if count >= expected:
                return count
        time.sleep(0.2)
    return count


def stop(process, what):
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        print(f"FAIL: {what} did not stop on SIGTERM; killed")
        failures.append(f"{what} did not stop on SIGTERM")
        process.kill()
        process.wait()


def leaves(value, prefix=()):
    """(path, value) of every field of a document; arrays are values."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, prefix + (k,))
    else:
        yield prefix, value


def field(document, path):
    for k in path:
        if not isinstance(document, dict) or k not in document:
            return KeyError
        document = document[k]
    return document


def check_ecs_fields(documents, enclosure, files):
    """Every field the shipper maps equals the product's (`audit show --format ecs`)."""
    r = subprocess.run([enclosure, "audit", "show", "--format", "ecs"] + files,
                       capture_output=True, text=True)
    check(r.returncode == 0, f"audit show --format ecs: exit {r.returncode}: {r.stderr}")
    product = {d["event"]["original"]: d for d in map(json.loads, r.stdout.splitlines())}
    compared, mapped = collections.Counter(), set()
    for d in documents:
        original = d["event"]["original"]
        expected = product.get(original)
        has_class = "category" in d["event"]
        if not check(has_class == (expected is not None),
                     f"shipper and audit show disagree on whether this record has an ECS class: "
                     f"{original[:200]}"):
            continue
        if expected is None:
            continue
        compared[d["event"]["action"]] += 1
        for path, value in leaves(d):
            if path in SHIPPER_ONLY:
                continue
            mapped.add(path)
            check(field(expected, path) == value,
                  f"{'.'.join(path)}: shipper {value!r}, audit show "
                  f"{field(expected, path)!r} ({original[:120]})")
    for t in ("start", "exec", "open", "connect", "deny", "exit"):
        check(compared[t] > 0, f"no {t} document compared")
    for path in (("@timestamp",), ("event", "kind"), ("event", "category"), ("event", "type"),
                 ("event", "outcome"), ("event", "id"), ("event", "sequence"),
                 ("process", "executable"), ("file", "path"), ("destination", "port"),
                 ("destination", "ip"), ("enclosure", "run"), ("labels", "enclosure_manifest")):
        check(path in mapped, f"the shipper never maps {'.'.join(path)}")
    print(f"ecs: {sum(compared.values())} documents compared field by field "
          f"({dict(compared)}), {len(mapped)} fields")


def chain_order(lines):
    """The lines in hash-chain order (each line's prev is the SHA-256 of the line before)."""
    by_prev = {json.loads(l)["prev"]: l for l in lines}
    ordered, prev = [], ZERO_HASH
    while prev in by_prev:
        line = by_prev.pop(prev)
        ordered.append(line)
        prev = hashlib.sha256(line.encode("utf-8")).hexdigest()
    check(not by_prev, f"{len(by_prev)} shipped lines are not on the chain")
    return ordered


def write_files(lines, directory):
    """Cuts the chain after each rotation head into audit.jsonl.N ... audit.jsonl, oldest first."""
    pieces = [[]]
    for line in lines:
        pieces[-1].append(line)
        record = json.loads(line)
        if record.get("type") == "head" and record.get("reason") == "rotation":
            pieces.append([])
    if not pieces[-1]:
        pieces.pop()
    os.makedirs(directory)
    names = [f"{LOG}.{n}" for n in range(len(pieces) - 1, 0, -1)] + [LOG]
    for name, piece in zip(names, pieces):
        with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
            f.write("".join(l + "\n" for l in piece))
    return [os.path.join(directory, n) for n in names]


def check_evidence(documents, enclosure, work, pub):
    ordered = chain_order([d["event"]["original"] for d in documents])
    files = write_files(ordered, os.path.join(work, "siem"))
    verify = [enclosure, "audit", "verify", "--require-closed", "--key", pub]
    r = subprocess.run(verify + files, capture_output=True, text=True)
    check(r.returncode == 0, f"the shipped lines do not verify: {r.stdout}{r.stderr}")
    print(f"verify of the shipped lines: {r.stdout.strip()}")
    tampered = list(ordered)
    i = next((n for n, l in enumerate(tampered)
              if json.loads(l).get("type") == "open" and '"ok":true' in l), None)
    if not check(i is not None, "no successful open record to alter"):
        return
    tampered[i] = tampered[i].replace('"ok":true', '"ok":false', 1)
    files = write_files(tampered, os.path.join(work, "siem-altered"))
    r = subprocess.run(verify + files, capture_output=True, text=True)
    check(r.returncode == 1, f"an altered event.original still verifies: {r.stdout}{r.stderr}")


def check_shipped(output, enclosure, work, pub):
    files = log_files(work)
    check(len(files) >= 2, "the log did not rotate during the test")
    logged = collections.Counter(l for f in files for l in read_lines(f))
    documents = []
    for n, line in enumerate(read_lines(output), 1):
        try:
            documents.append(json.loads(line))
        except ValueError as e:
            check(False, f"ecs.ndjson:{n} is not JSON ({e}): {line[:200]}")
    shipped = collections.Counter(d["event"]["original"] for d in documents)
    check(shipped == logged,
          f"lines shipped != lines logged: {sum((logged - shipped).values())} missing, "
          f"{sum((shipped - logged).values())} extra or repeated")
    print(f"shipped: {len(documents)} documents for {sum(logged.values())} lines in "
          f"{len(files)} files")
    check_ecs_fields(documents, enclosure, files)
    check_evidence(documents, enclosure, work, pub)


def loaded_modules(pid):
    with open(f"/proc/{pid}/maps") as f:
        return {os.path.basename(l.split()[-1]) for l in f if "/rsyslog/" in l}


def check_messages(path, live_log):
    """rsyslogd said nothing but, at a rotation, that the live name was briefly absent (between
    the collector's rename and its new file)."""
    benign = (f"imfile: poll_tree cannot stat file '{live_log}' - ignored: "
              "No such file or directory")
    with open(path) as f:
        messages = [l for l in f.read().splitlines() if l.strip() and benign not in l]
    check(not messages, "rsyslogd said: " + "\n".join(messages[:20]))


def ship(enclosure, work, config, key):
    """Collector, rsyslogd and the runs; returns the output file once it holds every line."""
    collector = shipper = None
    output = os.path.join(work, "out", "ecs.ndjson")
    try:
        collector = start_collector(enclosure, work, key)
        shipper = subprocess.Popen(
            ["rsyslogd", "-n", "-f", config, "-i", os.path.join(work, "rsyslogd.pid")],
            stdin=subprocess.DEVNULL, stdout=open(os.path.join(work, "rsyslogd.out"), "w"),
            stderr=subprocess.STDOUT)
        time.sleep(0.5)
        check(shipper.poll() is None, "rsyslogd did not start")
        modules = loaded_modules(shipper.pid)
        check(not modules & {"imuxsock.so", "imklog.so", "imjournal.so"},
              f"rsyslogd loaded a system input: {sorted(modules)}")
        run_enclosures(enclosure, work, 3)
        stop(collector, "the collector")
        expected = sum(len(read_lines(f)) for f in log_files(work))
        got = wait_for_documents(output, expected, 60)
        check(got == expected, f"rsyslogd wrote {got} documents for {expected} lines in 60s")
        stop(shipper, "rsyslogd")
        check_messages(os.path.join(work, "rsyslogd.out"), os.path.join(work, "log", LOG))
    finally:
        for process in (shipper, collector):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    return output


def main():
    enclosure, source = os.path.abspath(sys.argv[1]), sys.argv[2]
    ci = os.environ.get("CI") == "true"
    for need, why in ((os.geteuid() == 0, "enclosure run needs root here"),
                      (shutil.which("rsyslogd") is not None, "rsyslogd is not installed")):
        if not need:
            print(f"{'FAIL' if ci else 'SKIP'}: {why}" + (" (CI=true: must run)" if ci else ""))
            return 1 if ci else 77
    work = tempfile.mkdtemp(prefix="enclosure-shipper-")
    try:
        os.chmod(work, 0o755)
        for d in ("log", "state", "out"):
            os.makedirs(os.path.join(work, d))
        key, pub = make_key(work)
        config = validate_configs(source, work)
        output = ship(enclosure, work, config, key)
        check_shipped(output, enclosure, work, pub)
    finally:
        left = subprocess.run(["pgrep", "-f", work], capture_output=True, text=True).stdout
        check(not left.strip(), f"processes left behind: {left}")
        shutil.rmtree(work, ignore_errors=True)
    print(f"shipper: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
