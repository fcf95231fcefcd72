#!/usr/bin/env python3
"""Lists, for each normative statement id ([MQTT-x.y.z-n]) cited in a test, the tests that cite it.

A citation counts for the TEST() whose body it stands in (C++), or the test method it stands in
(the Python integration tests). Use it to keep the "Covered by" column of
docs/conformance.md true:  scripts/spec-refs.py [ID ...]
"""
import collections
import glob
import re
import sys


def id_key(s):
    return [int(x) for x in re.split(r"[.-]", s) if x.isdigit()]


def collect_python(root, refs):
    """Citations in the integration tests: `def test_x` inside `class Y` counts as `Y.test_x`."""
    for path in sorted(glob.glob(f"{root}/integration/test_*.py")):
        cls = None
        current = None
        for line in open(path, encoding="utf-8"):
            m = re.match(r"class (\w+)", line)
            if m:
                cls, current = m.group(1), None
            m = re.match(r"\s+def (test_\w+)", line)
            if m:
                current = f"{cls}.{m.group(1)}" if cls else m.group(1)
            if current:
                for cite in re.finditer(r"MQTT-(\d[\d.]*-\d+)", line):
                    refs["MQTT-" + cite.group(1)].add(current)


def collect(root="tests"):
    refs = collections.defaultdict(set)
    collect_python(root, refs)
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
