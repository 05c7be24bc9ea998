#!/usr/bin/env python3
"""Holds the source to the sizes a reader can keep in their head (docs/decisions.md):
no non-test file in src/ over 500 lines, none in src/edge/ over 200, no function over 60.
Test modules (`#[cfg(test)] mod tests { ... }` and files named tests.rs) do not count."""

import pathlib
import re
import sys

FILE_MAX, EDGE_MAX, FN_MAX = 500, 200, 60
FN = re.compile(r"^(\s*)(pub(\([^)]*\))? )?(const )?(async )?fn \w+")


def non_test_lines(lines):
    for i, line in enumerate(lines):
        if line.startswith("#[cfg(test)]") and i + 1 < len(lines) and lines[i + 1].startswith("mod tests {"):
            return lines[:i]
    return lines


def long_functions(lines):
    for i, line in enumerate(lines):
        m = FN.match(line)
        if not m or line.rstrip().endswith(";"):
            continue
        indent = m.group(1)
        for j in range(i + 1, len(lines)):
            if lines[j].startswith(indent + "}") and not lines[j].startswith(indent + "} else"):
                if j - i + 1 > FN_MAX:
                    yield i + 1, line.strip(), j - i + 1
                break


def main():
    root = pathlib.Path(__file__).resolve().parent.parent / "src"
    problems = []
    for path in sorted(root.rglob("*.rs")):
        if path.name == "tests.rs":
            continue
        lines = non_test_lines(path.read_text().split("\n"))
        rel = path.relative_to(root.parent)
        cap = EDGE_MAX if "edge" in path.parts else FILE_MAX
        if len(lines) > cap:
            problems.append(f"{rel}: {len(lines)} non-test lines (at most {cap})")
        for at, sig, n in long_functions(lines):
            problems.append(f"{rel}:{at}: {n}-line function (at most {FN_MAX}): {sig}")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
