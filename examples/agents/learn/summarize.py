#!/usr/bin/python3
"""Example agent for `enclosure learn`: reads every file of ./data and writes out/summary.txt."""
import os

os.makedirs("out", exist_ok=True)
lines = []
for name in sorted(os.listdir("data")):
    with open(os.path.join("data", name), encoding="utf-8", errors="replace") as f:
        lines.append(f"{name}: {len(f.read().split())} words")
with open("out/summary.txt", "w") as f:
    f.write("\n".join(lines) + "\n")
print(f"summarized {len(lines)} files")
