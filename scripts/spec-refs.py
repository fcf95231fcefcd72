#!/usr/bin/env python3
"""Lists, for each normative statement id ([MQTT-x.y.z-n]) cited in a test, the tests that cite it.

A citation counts for the TEST() whose body it stands in. Use it to keep the "Covered by" column of
docs/conformance.md true:  scripts/spec-refs.py [ID ...]
"""
import collections
import glob
import re
import sys


def id_key(s):
    return [int(x) for x in re.split(r"[.-]", s) if x.isdigit()]


def collect(root="tests"):
    refs = collections.defaultdict(set)
    for path in sorted(glob.glob(f"{root}/**/*_test.cc", recursive=True)):
        current = None
        for line in open(path, encoding="utf-8"):
            m = re.match(r"\s*TEST(?:_P|_F)?\((\w+),\s*(\w+)\)", line)
            if m:
                current = f"{m.group(1)}.{m.group(2)}"
            if current:
                for cite in re.finditer(r"MQTT-(\d[\d.]*-\d+)", line):
                    refs["MQTT-" + cite.group(1)].add(current)
            if line.startswith("}"):
                current = None
    return refs


def main():
    refs = collect()
    wanted = sys.argv[1:] or sorted(refs, key=id_key)
    for ident in wanted:
        print(ident, " ".join(sorted(refs.get(ident, ()))) or "-")


if __name__ == "__main__":
    main()
