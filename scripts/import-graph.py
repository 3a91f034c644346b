#!/usr/bin/env python3
"""Draws the import graph of every crate in the workspace and checks that it flows one way.

Two levels are checked:
- modules: the top-level modules of each crate (`src/<module>/` or `src/<module>.rs`) must form
  no circle, and in the hubsync crate every import must point down the layer order below;
- files: inside a module folder, the files (siblings) must form no circle. `mod.rs` and
  `lib.rs` are facades that re-export, so imports through them are not counted.

An import is any path `crate::a::b` or `super::b` in a file, in a `use` or inline, outside the
file's unit tests. Exit status 1
when a rule is broken, with each circle or upward import printed; `--dot` prints the module graph
in Graphviz form instead.
"""

import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The hubsync crate's layers, lowest first. A module may import only modules of lower layers.
LAYERS = [
    ["telemetry", "config", "private_files"],
    ["source"],
    ["state", "auth"],
    ["accounts"],
    ["sync"],
    ["scheduler"],
    ["cli"],
]

PATH = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
GROUP = re.compile(r"\b(crate|super)::\{([^}]*)\}")


def strip_comments(text):
    # A file's unit tests (`#[cfg(test)] mod tests`, at its end) may use what they test with.
    text = re.split(r"#\[cfg\(test\)\]\s*mod tests", text)[0]
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def module_files(src):
    """Every .rs file of a crate, keyed by its module path (a tuple of names)."""
    files = {}
    for path in src.rglob("*.rs"):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] in ("mod", "lib", "main"):
            parts = parts[:-1]
        files[tuple(parts)] = path
    return files


def references(text):
    """(`crate` or `super`, first path segments) of every path in the text."""
    for m in GROUP.finditer(text):
        for item in m.group(2).split(","):
            item = item.strip()
            if item and item != "self":
                yield m.group(1), [s for s in item.split("::") if s]
    for m in PATH.finditer(text):
        yield m.group(1), [s for s in m.group(2).split("::") if s]


def edges_of(src):
    files = module_files(src)
    module_edges = defaultdict(set)
    file_edges = defaultdict(set)
    for mod_path, path in files.items():
        text = strip_comments(path.read_text())
        is_facade = path.name in ("mod.rs", "lib.rs", "main.rs")
        # The module a `super::` path starts from.
        parent = mod_path if is_facade else mod_path[:-1]
        if is_facade:
            parent = mod_path[:-1] if mod_path else ()
        for kind, segs in references(text):
            if kind == "crate":
                target = tuple(segs)
            else:
                while segs and segs[0] == "super":
                    segs = segs[1:]
                    parent = parent[:-1]
                target = parent + tuple(segs)
            # The longest prefix that is a file.
            while target and target not in files:
                target = target[:-1]
            if not target or target == mod_path:
                continue
            if mod_path and target[0] != mod_path[0]:
                module_edges[mod_path[0]].add(target[0])
            # Siblings in one folder (a facade does not count).
            if (
                not is_facade
                and len(target) == len(mod_path)
                and target[:-1] == mod_path[:-1]
                and files[target].name not in ("mod.rs", "lib.rs")
            ):
                file_edges["/".join(mod_path)].add("/".join(target))
    return module_edges, file_edges


def circles(edges):
    """Every strongly connected component with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
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

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def main():
    crates = [("hubsync", ROOT / "src")]
    if (ROOT / "crates").is_dir():
        crates += [(p.name, p / "src") for p in sorted((ROOT / "crates").iterdir())]
    rank = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    problems = []
    if "--dot" in sys.argv:
        print("digraph imports {")
    for name, src in crates:
        module_edges, file_edges = edges_of(src)
        if "--dot" in sys.argv:
            for a, targets in sorted(module_edges.items()):
                for b in sorted(targets):
                    print(f'  "{name}::{a}" -> "{name}::{b}";')
            continue
        for comp in circles(module_edges):
            problems.append(f"{name}: modules import each other: {' <-> '.join(comp)}")
        for comp in circles(file_edges):
            problems.append(f"{name}: files import each other: {' <-> '.join(comp)}")
        if name == "hubsync":
            for a, targets in sorted(module_edges.items()):
                for b in sorted(targets):
                    if a not in rank or b not in rank:
                        problems.append(f"hubsync: module `{a}` or `{b}` has no layer in scripts/import-graph.py")
                    elif rank[b] >= rank[a] and a != b:
                        problems.append(f"hubsync: `{a}` imports `{b}`, which is not below it")
        edges = sum(len(t) for t in module_edges.values()) + sum(len(t) for t in file_edges.values())
        if "--dot" not in sys.argv:
            print(f"{name}: {len(module_edges)} modules and {len(file_edges)} files import others ({edges} edges)")
    if "--dot" in sys.argv:
        print("}")
        return 0
    for p in problems:
        print(p)
    print("import graph: " + ("one way, no circles" if not problems else f"{len(problems)} problems"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
