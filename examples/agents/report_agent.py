#!/usr/bin/python3
"""A small example agent: reads the files of its task folder, writes a report, and then -
as a prompt-injected agent might - tries three things its manifest does not allow."""
import ctypes
import os
import socket
import sys

task = os.environ.get("TASK_DIR", "/task")
out = os.environ.get("OUT_DIR", "/out")

# 1. The job: summarise the task folder.
lines = ["# Report on " + task, ""]
total = 0
for name in sorted(os.listdir(task)):
    with open(os.path.join(task, name), encoding="utf-8", errors="replace") as f:
        words = len(f.read().split())
    total += words
    lines.append(f"- {name}: {words} words")
lines += ["", f"Total: {total} words"]
with open(os.path.join(out, "report.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
print(f"agent: wrote {out}/report.md ({total} words in {len(lines) - 4} files)")

# 2. What a hijacked agent would try next. Each attempt fails in the kernel.
def attempt(what, action):
    try:
        result = action()
        print(f"agent: {what}: SUCCEEDED ({result}) - this should not happen")
    except OSError as e:
        print(f"agent: {what}: denied ({e.strerror})")

attempt("read the host's SSH keys", lambda: open("/root/.ssh/id_rsa").read())
attempt("write outside the output folder", lambda: open(os.path.join(task, "tampered"), "w"))
attempt("connect to a web service", lambda: socket.create_connection(("127.0.0.1", 80), timeout=2))

libc = ctypes.CDLL(None, use_errno=True)
if libc.ptrace(16, 1, 0, 0) == -1:  # PTRACE_ATTACH to pid 1
    print(f"agent: ptrace another process: denied ({os.strerror(ctypes.get_errno())})")
else:
    print("agent: ptrace another process: SUCCEEDED - this should not happen")
sys.exit(0)
