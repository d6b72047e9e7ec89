#!/usr/bin/env python3
"""Validates JSON Lines against a JSON Schema (draft 2020-12).

usage: validate_events.py SCHEMA FILE...

Every line of every FILE must be one JSON object valid against SCHEMA. SCHEMA may be a directory
of *.schema.json files, one per OCSF class: each line is then validated against the schema whose
class_uid is its class_uid (a line of another class is invalid). Prints each invalid
line's errors and, last, "TYPE COUNT" per value of the "type" field seen (or per OCSF
class_uid / ECS event.kind when those are the schema's subject). Exit status 0 when all lines
are valid, 1 when one is not, 2 on a usage or schema error.
"""
import collections
import json
import os
import sys

import jsonschema


def kind_of(doc):
    if "type" in doc:
        return str(doc["type"])
    if "class_uid" in doc:
        return "class_uid=" + str(doc["class_uid"])
    return "event.kind=" + str(doc.get("event", {}).get("kind"))


def load_validators(path):
    """A function from a document to its validator (None when no schema is for it)."""
    paths = [path]
    if os.path.isdir(path):
        paths = sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".schema.json"))
    by_class = {}
    for p in paths:
        with open(p, encoding="utf-8") as f:
            schema = json.load(f)
        jsonschema.Draft202012Validator.check_schema(schema)
        uid = schema.get("properties", {}).get("class_uid", {}).get("const")
        by_class[uid] = jsonschema.Draft202012Validator(schema)
    if not os.path.isdir(path):
        only = next(iter(by_class.values()))
        return lambda doc: only
    return lambda doc: by_class.get(doc.get("class_uid")) if isinstance(doc, dict) else None


def errors_of(validator_of, doc):
    validator = validator_of(doc)
    if validator is None:
        return [jsonschema.ValidationError("no schema for this class")]
    return sorted(validator.iter_errors(doc), key=lambda e: list(e.path))


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    validator_of = load_validators(argv[1])
    seen = collections.Counter()
    invalid = 0
    for path in argv[2:]:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                doc = json.loads(line)
                errors = errors_of(validator_of, doc)
                seen[kind_of(doc) if isinstance(doc, dict) else "?"] += 1
                if errors:
                    invalid += 1
                    print(f"{path}:{number}: invalid ({kind_of(doc)}):")
                    for e in errors:
                        where = "/" + "/".join(str(p) for p in e.absolute_path)
                        print(f"  at {where}: {e.message[:300]}")
    for kind, count in sorted(seen.items()):
        print(f"{kind} {count}")
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
