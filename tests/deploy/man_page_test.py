#!/usr/bin/env python3
"""Keeps launcher/cli/enclosure.1 and scripts/enclosure-completion.bash in line with the binary: the
man page renders without a groff warning; every command that `enclosure --help` lists has its
section in the man page and its words in the completion, and every option that
`enclosure COMMAND --help` prints is documented there and completed.

Usage: man_page_test.py ENCLOSURE_BINARY SOURCE_DIR"""
import os
import re
import shutil
import subprocess
import sys

failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
    return condition


def help_of(enclosure, *words):
    r = subprocess.run([enclosure, *words, "--help"], capture_output=True, text=True)
    check(r.returncode == 0, f"enclosure {' '.join(words)} --help exited {r.returncode}")
    return r.stdout


def options_in(help_text):
    """Options as boost::program_options prints them: "  -m [ --manifest ] arg", "  --json"."""
    out = set()
    for line in help_text.splitlines():
        m = re.match(r"^  (-\w) \[ (--[\w-]+) \]", line)
        if m:
            out.update(m.groups())
            continue
        m = re.match(r"^  (--[\w-]+)", line)
        if m:
            out.add(m.group(1))
    return out


def main():
    enclosure, source = sys.argv[1], sys.argv[2]
    page_path = os.path.join(source, "launcher", "cli", "enclosure.1")
    with open(page_path, encoding="utf-8") as f:
        page = f.read()
    text = page.replace("\\-", "-")
    with open(os.path.join(source, "scripts", "enclosure-completion.bash"), encoding="utf-8") as f:
        completion = f.read()

    groff = shutil.which("groff")
    if check(groff is not None, "groff is not installed (Debian package groff-base)"):
        r = subprocess.run([groff, "-man", "-ww", "-z", page_path], capture_output=True, text=True)
        check(r.returncode == 0 and not r.stderr.strip(), f"groff: {r.stderr.strip()}")

    top = help_of(enclosure)
    commands = re.findall(r"^  ([a-z]+) ", top, re.M)
    check(len(commands) >= 5, f"enclosure --help lists {commands}")
    m = re.search(r'local commands="([^"]*)"', completion)
    completed_commands = set(m.group(1).split()) if m else set()
    for command in commands:
        check(re.search(r'^\.SS "enclosure ' + command + r"\b", text, re.M) is not None,
              f"enclosure.1 has no section for `enclosure {command}`")
        check(command in completed_commands, f"the completion does not offer `{command}`")
        helps = [(command,)]
        if command == "audit":
            helps = [("audit", "verify"), ("audit", "show")]
        for words in helps:
            section = re.search(r'^\.SS "enclosure ' + " ".join(words) + r'\b.*?(?=^\.SS |^\.SH )',
                                text, re.M | re.S)
            if not check(section is not None, f"enclosure.1 has no section for {words}"):
                continue
            options = options_in(help_of(enclosure, *words))
            check(options, f"`enclosure {' '.join(words)} --help` shows no options")
            for option in sorted(options):
                if option in ("-h", "--help"):
                    continue
                check(re.search(re.escape(option) + r"(?![\w-])", section.group(0)) is not None,
                      f"enclosure.1: `enclosure {' '.join(words)}` does not document {option}")
                check(re.search(r"[\s\"]" + re.escape(option) + r"(?=[\s\"])", completion) is not None,
                      f"the completion does not offer {option} ({' '.join(words)})")

    # The completion itself, in bash.
    bash = shutil.which("bash")
    script = os.path.join(source, "scripts", "enclosure-completion.bash")
    cases = [
        (["enclosure", "ex"], 1, {"explain", "export"}),
        (["enclosure", "export", "--fo"], 2, {"--format"}),
        (["enclosure", "export", "--format", ""], 3, {"oci-seccomp"}),
        (["enclosure", "audit", "v"], 2, {"verify"}),
        (["enclosure", "collect", "--fsync", "d"], 3, {"durable"}),
        (["enclosure", "da"], 1, {"daemon"}),
        (["enclosure", "daemon", "--allow-g"], 2, {"--allow-group"}),
        (["enclosure", "daemon", "--allow-group", "roo"], 3, {"root"}),
        (["enclosure", "run", "--da"], 2, {"--daemon"}),
    ]
    for words, cword, expected in cases:
        program = (f"source {script!r}; COMP_WORDS=({' '.join(repr(w) for w in words)}); "
                   f"COMP_CWORD={cword}; COMP_LINE={' '.join(words)!r}; COMP_POINT=${{#COMP_LINE}}; "
                   "_enclosure; printf '%s\\n' \"${COMPREPLY[@]}\"")
        r = subprocess.run([bash, "-c", program], capture_output=True, text=True)
        got = set(r.stdout.split())
        check(r.returncode == 0 and got == expected,
              f"completion of {words}: {sorted(got)}, expected {sorted(expected)} {r.stderr.strip()}")

    for f in failures:
        print("FAIL:", f)
    print(f"man page and completion: {len(commands)} commands, {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
