"""The package's floors, read from the source: no import runs up a floor, none goes round in a circle.

The floors, from the ground up (README's "How it is built" says the same in words). A module
may import its own floor and the floors below it, never one above; the tools never import one
another (what two of them share sits a floor below them). Every module must stand on a floor:
a new one fails here until it is placed.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "netbpf"

FLOORS: list[tuple[str, ...]] = [
    # 1 the ground: imports nothing of netbpf
    ("netbpf", "errors", "libc", "output"),
    # 2 the machine: network interfaces and namespaces
    ("netdev", "netns"),
    # 3 the loader
    ("bpf",),
    # 4 what tools share: packets, processes, privilege, pins, metrics, flags, the run loop, tracepoint
    # helpers, the lab
    ("packet", "attrib", "privilege", "pin_owners", "metrics", "cliutil", "run", "tracepoints", "lab"),
    # 5 the tools (and the registry that lists them), and status/cleanup
    ("tools", "status"),
    # 6 the commands: the entry point, `netbpf status|cleanup`, `netbpf lab` (which runs each tool's demo)
    ("cli", "__main__", "status_cli", "lab_cli"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The netbpf module an imported dotted name lands in (a name inside a module: that module)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(known: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the netbpf modules it imports, at any depth of its code (lazy imports count)."""
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                # `from pkg import sub` imports the module pkg.sub when there is one
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                           for alias in node.names]
            for target in targets:
                if target.split(".")[0] != "netbpf":
                    continue
                resolved = _resolve(target, known)
                if resolved is not None and resolved != name:
                    found.add(resolved)
        graph[name] = found
    return graph


def floor_of(name: str) -> int:
    """The floor of the longest prefix of ``name`` written in FLOORS (``bpf.attach`` is ``bpf``'s)."""
    relative = name.removeprefix("netbpf.") if name != "netbpf" else "netbpf"
    best, floor = -1, 0
    for number, places in enumerate(FLOORS, start=1):
        for place in places:
            if (relative == place or relative.startswith(place + ".")) and len(place) > best:
                best, floor = len(place), number
    return floor


def tool_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "tools" else None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


KNOWN = modules()
GRAPH = imports(KNOWN)


def test_the_graph_is_read() -> None:
    """Guards the reader itself: arrows known to exist are found, so the tests below can fail."""
    assert "netbpf.errors" in GRAPH["netbpf.netdev"]
    assert "netbpf.tools" in GRAPH["netbpf.lab_cli"]  # `from . import tools`
    assert "netbpf.bpf.attach.base" in GRAPH["netbpf.privilege"]
    assert "netbpf.tracepoints.scope" in GRAPH["netbpf.tools.tcp.kernel"]
    assert len(KNOWN) > 100


def test_every_module_stands_on_a_floor() -> None:
    assert [name for name in KNOWN if floor_of(name) == 0] == []


def test_no_import_runs_up_a_floor() -> None:
    upward = [f"{a} (floor {floor_of(a)}) -> {b} (floor {floor_of(b)})"
              for a, targets in sorted(GRAPH.items()) for b in sorted(targets) if floor_of(b) > floor_of(a)]
    assert upward == []


def test_tools_never_import_one_another() -> None:
    crossing = [f"{a} -> {b}" for a, targets in sorted(GRAPH.items()) for b in sorted(targets)
                if tool_of(a) and tool_of(b) and tool_of(a) != tool_of(b)]
    assert crossing == []


def test_no_circle() -> None:
    assert cycles(GRAPH) == []


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_a_circle_is_found(graph: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert cycles(graph) == expected


def test_an_upward_import_is_seen() -> None:
    assert floor_of("netbpf.bpf.attach.base") < floor_of("netbpf.tools.dump.cli") < floor_of("netbpf.cli")
    assert floor_of("netbpf.lab.demo") < floor_of("netbpf.tools.fault.demo") < floor_of("netbpf.lab_cli")
