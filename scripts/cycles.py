#!/usr/bin/env python3
"""Fails when a module of src/ depends on one that depends back on it (an import cycle).

Modules are the crate's files (`core/feed/mod.rs` is `core::feed`). A module depends on
another when its non-test code names it: a `use` tree or a path written inline
(`crate::core::x::…`, `super::x`, `self::x`, or a child module's name). Declaring a child
(`mod x;`) is not a dependency; a child that reaches back into its parent is one, so every
module depends only downward, on leaves or on its own children. Test code does not count.
Prints each cycle's modules; `--graph` prints every edge."""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "src"
USE = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", re.M)
INLINE = re.compile(r"\b((?:crate|super|self)(?:::\w+)+)")
TEST_MOD = re.compile(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*mod\s+\w+\s*;")
COMMENT = re.compile(r"//[^\n]*")


def module_of(path):
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return tuple(["crate"] + parts)


def test_files():
    """Files that are test modules (`#[cfg(test)] mod x;` next to them, or tests.rs)."""
    skip = set()
    for path in ROOT.rglob("*.rs"):
        text = path.read_text()
        for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*mod\s+(\w+)\s*;", text):
            base = path.parent if path.name in ("mod.rs", "lib.rs") else path.with_suffix("")
            skip.add(base / f"{m.group(1)}.rs")
            skip.add(base / m.group(1) / "mod.rs")
        if path.name == "tests.rs":
            skip.add(path)
    return skip


def strip_tests(text):
    """Drops `#[cfg(test)] mod tests { … }` blocks and comments."""
    text = COMMENT.sub("", text)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def expand(tree):
    """`a::{b, c::{d, e}}` → ["a::b", "a::c::d", "a::c::e"]."""
    tree = re.sub(r"\s+", "", tree)
    if "{" not in tree:
        return [re.sub(r"as\w+$", "", tree)]
    head, rest = tree.split("{", 1)
    body = rest[: rest.rfind("}")]
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        cur += ch
    parts.append(cur)
    return [p for part in parts if part for p in expand(head + part)]


def resolve(here, is_dir, path, modules):
    segs = [s for s in path.split("::") if s]
    base = list(here)
    if segs[0] == "crate":
        base, segs = ["crate"], segs[1:]
    elif segs[0] in ("super", "self"):
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                base = base[:-1]
            segs = segs[1:]
    elif tuple(base + segs[:1]) not in modules:
        return None  # an external crate or a local item
    full = base + segs
    for n in range(len(full), 0, -1):
        if tuple(full[:n]) in modules:
            return tuple(full[:n])
    return None


def graph():
    skip = test_files()
    files = [p for p in ROOT.rglob("*.rs") if p not in skip]
    modules = {module_of(p): p for p in files}
    edges = {m: set() for m in modules}
    for mod, path in modules.items():
        text = strip_tests(path.read_text())
        text = TEST_MOD.sub("", text)
        paths = [p for m in USE.finditer(text) for p in expand(m.group(1))]
        paths += [m.group(1) for m in INLINE.finditer(USE.sub("", text))]
        for p in paths:
            target = resolve(mod, path.name == "mod.rs", p, modules)
            if target and target != mod and not is_ancestor(target, mod, path):
                edges[mod].add(target)
            elif target and target != mod:
                edges[mod].add(target)
    return edges


def is_ancestor(a, b, _path):
    return len(a) < len(b) and b[: len(a)] == a


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def name(m):
    return "::".join(m[1:]) or "crate"


def main():
    edges = graph()
    if "--graph" in sys.argv:
        for m in sorted(edges):
            for t in sorted(edges[m]):
                print(f"{name(m)} -> {name(t)}")
    found = cycles(edges)
    for comp in found:
        members = set(comp)
        print("import cycle: " + ", ".join(name(m) for m in comp))
        for m in comp:
            back = sorted(name(t) for t in edges[m] if t in members)
            print(f"  {name(m)} -> {', '.join(back)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
