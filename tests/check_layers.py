#!/usr/bin/python3
"""check_layers.py - the tree's modules call and include only downwards.

Run after a build, from the top of the tree (tests/run-all.sh does):

  1. no include cycle: the graph of '#include "x.h"' between the project's
     own files (common/, milter/, peer/) has no cycle;
  2. no call cycle between files: from the object files of the build,
     file A calls file B when A's object uses a symbol B's defines
     (nm); that graph has no cycle, so every module calls only downwards;
  3. the sync daemon's layers (README, "How a change is committed"):
     a module calls only modules of a lower layer or its own.

Prints one "ok"/"FAIL" line per check and "N passed, M failed".  Exit 1 on
any failure, or when it cannot check (no objects: build first).
"""
import glob
import os
import re
import subprocess
import sys

DIRS = ("common", "milter", "peer")

# The sync daemon, top to bottom: a module may call its own layer's and
# lower ones.  Files not listed here (common/, the TLS and peer link,
# Postfix's tools) sit below all of these.
PEER_LAYERS = [
    ("entry points", {"peer/main", "peer/ctlserver", "peer/aliasctl", "peer/setup",
                      "peer/setup-look", "peer/setup-plan", "peer/setup-apply",
                      "peer/setup-report"}),
    ("control operations", {"peer/engine"}),
    ("background sync", {"peer/sync"}),
    ("commit protocol", {"peer/commit"}),
    ("map state", {"peer/mapstate"}),
]

passed = failed = 0


def report(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok   - " + what)
    else:
        failed += 1
        print("FAIL - " + what + (": " + detail if detail else ""))


def find_cycle(graph):
    """A cycle in graph (node -> set of nodes) as a list, or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {n: WHITE for n in graph}
    stack = []

    def visit(n):
        colour[n] = GREY
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if m == n:
                continue
            if colour.get(m, WHITE) == GREY:
                return stack[stack.index(m):] + [m]
            if colour.get(m, WHITE) == WHITE:
                colour.setdefault(m, WHITE)
                c = visit(m)
                if c:
                    return c
        stack.pop()
        colour[n] = BLACK
        return None

    for n in sorted(graph):
        if colour[n] == WHITE:
            c = visit(n)
            if c:
                return c
    return None


def include_graph():
    files = [f for d in DIRS for f in glob.glob(d + "/*.[ch]")]
    by_name = {}
    for f in files:
        by_name.setdefault(os.path.basename(f), f)
    graph = {}
    for f in files:
        deps = set()
        with open(f, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
                if m and m.group(1) in by_name and by_name[m.group(1)] != f:
                    deps.add(by_name[m.group(1)])
        graph[f] = deps
    return graph


def module_of(obj):
    """peer/libpeer_a-commit.o -> peer/commit; milter/milter_alias-filter.o
    -> milter/filter"""
    d, base = os.path.split(obj)
    base = base[:-2]
    if "-" in base:
        base = base.split("-", 1)[1]
    return d + "/" + base


def call_graph():
    objs = [o for d in DIRS for o in glob.glob(d + "/*.o")]
    if not objs:
        return None
    defined, used = {}, {}
    for o in objs:
        out = subprocess.run(["nm", "-P", o], capture_output=True, text=True,
                             check=True).stdout
        mod = module_of(o)
        used.setdefault(mod, set())
        for line in out.splitlines():
            parts = line.split()
            if len(parts) < 2:
                continue
            sym, kind = parts[0], parts[1]
            if kind == "U":
                used[mod].add(sym)
            elif kind in "TDBR":
                defined[sym] = mod
    graph = {}
    for mod, syms in used.items():
        graph[mod] = {defined[s] for s in syms if s in defined and defined[s] != mod}
    return graph


def main():
    if not os.path.isdir("peer"):
        print("run from the top of the tree")
        return 2
    cyc = find_cycle(include_graph())
    report(cyc is None, "no include cycle among common/, milter/, peer/",
           " -> ".join(cyc) if cyc else "")
    graph = call_graph()
    if graph is None:
        report(False, "object files to read the calls from", "build first")
    else:
        cyc = find_cycle(graph)
        report(cyc is None, "no call cycle between files (%d modules)" % len(graph),
               " -> ".join(cyc) if cyc else "")
        rank = {}
        for i, (_, mods) in enumerate(PEER_LAYERS):
            for m in mods:
                rank[m] = i
        for i, (name, mods) in enumerate(PEER_LAYERS):
            bad = sorted("%s -> %s" % (m, callee)
                         for m in mods for callee in graph.get(m, ())
                         if rank.get(callee, len(PEER_LAYERS)) < i)
            report(not bad, "layer '%s' calls nothing above it" % name, ", ".join(bad))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
