#!/usr/bin/env python3
"""Holds the code to the sizes a reader can keep in their head (docs/decisions.md), in every
crate of the workspace and in the client package: no non-test file over 500 lines (none in
src/edge/ over 200), no function over 60. Rust test modules (`#[cfg(test)] mod tests { ... }`,
files named tests.rs or *_tests.rs) and JavaScript test directories do not count."""

import pathlib
import re
import sys

FILE_MAX, EDGE_MAX, FN_MAX = 500, 200, 60
ROOT = pathlib.Path(__file__).resolve().parent.parent
RUST_DIRS = ["src", "bench/src", "fake-exchange/src", "devstack/src"]
JS_FILES = ["clients/js", "public", "bench/floor", "bench/peer", "examples"]
RS_FN = re.compile(r"^(\s*)(pub(\([^)]*\))? )?(const )?(async )?fn \w+")
JS_FN = re.compile(
    r"^(\s*)(export\s+)?(default\s+)?(async\s+)?(function\b.*|(static\s+)?(async\s+)?(get\s+|set\s+)?#?\w+\s*\(.*\)\s*|.*=>\s*)\{\s*$"
)
JS_SKIP = re.compile(r"^\s*(if|for|while|switch|catch|else|try|do)\b|^\s*\}")


def non_test_lines(lines):
    for i, line in enumerate(lines):
        if line.startswith("#[cfg(test)]") and i + 1 < len(lines) and lines[i + 1].startswith("mod tests {"):
            return lines[:i]
    return lines


def long_functions(lines, pattern, skip=None):
    for i, line in enumerate(lines):
        m = pattern.match(line)
        if not m or line.rstrip().endswith(";") or (skip and skip.match(line)):
            continue
        indent = m.group(1)
        for j in range(i + 1, len(lines)):
            closing = lines[j].startswith(indent + "}")
            if closing and not lines[j].startswith(indent + "} else"):
                if j - i + 1 > FN_MAX:
                    yield i + 1, line.strip(), j - i + 1
                break


def check(path, lines, cap, pattern, skip=None):
    rel = path.relative_to(ROOT)
    if len(lines) > cap:
        yield f"{rel}: {len(lines)} non-test lines (at most {cap})"
    for at, sig, n in long_functions(lines, pattern, skip):
        yield f"{rel}:{at}: {n}-line function (at most {FN_MAX}): {sig[:80]}"


def main():
    problems = []
    for d in RUST_DIRS:
        for path in sorted((ROOT / d).rglob("*.rs")):
            if path.name == "tests.rs" or path.name.endswith("_tests.rs"):
                continue
            lines = non_test_lines(path.read_text().split("\n"))
            cap = EDGE_MAX if "edge" in path.parts else FILE_MAX
            problems += check(path, lines, cap, RS_FN)
    for d in JS_FILES:
        for path in sorted((ROOT / d).rglob("*.*js")):
            if "test" in path.parts or "node_modules" in path.parts or path.suffix not in (".js", ".mjs"):
                continue
            if path.relative_to(ROOT).parts[:2] in (("public", "edgetick.js"), ("public", "edgetick")):
                continue  # copies of clients/js
            if "vendor" in path.parts or path.name.endswith(".min.js"):
                continue
            lines = path.read_text().split("\n")
            problems += check(path, lines, FILE_MAX, JS_FN, JS_SKIP)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
