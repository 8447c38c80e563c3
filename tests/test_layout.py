"""The package layout of docs/design.md, checked from the source: the dependency
direction (streams.events <- pacing <- monitors <- alerts <- streams), the worker in
``streams.kafka`` and the commands in ``streams.cli`` with no import cycle between them."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("streams", "monitors", "pacing", "alerts")


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """Every module of ours -> the modules of ours it imports (at any depth of the file,
    lazy imports inside functions included)."""
    graph: dict[str, set[str]] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            found: set[str] = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                else:
                    continue
                found.update(n for n in names if n.split(".")[0] in PACKAGES)
            graph[_module(path)] = found
    # "from streams.cli import kafka" names a module: keep only names that are modules
    return {m: {n for n in deps if n in graph} for m, deps in graph.items()}


GRAPH = _imports()


def test_the_lower_layers_never_import_the_streams_side_but_the_event_contract() -> None:
    bad = {
        (mod, dep)
        for mod, deps in GRAPH.items()
        if mod.split(".")[0] in ("pacing", "monitors", "alerts")
        for dep in deps
        if dep.startswith("streams") and dep != "streams.events"
    }
    assert not bad, f"imports against the layering: {sorted(bad)}"


def test_direction_pacing_below_monitors_below_alerts() -> None:
    rank = {"pacing": 0, "monitors": 1, "alerts": 2}
    bad = {
        (mod, dep)
        for mod, deps in GRAPH.items()
        if mod.split(".")[0] in rank
        for dep in deps
        if dep.split(".")[0] in rank and rank[dep.split(".")[0]] > rank[mod.split(".")[0]]
    }
    assert not bad, f"upward imports: {sorted(bad)}"


def test_worker_and_cli_live_in_their_own_packages() -> None:
    flat = sorted(p.name for p in (ROOT / "streams").glob("*.py"))
    assert not [n for n in flat if n.startswith(("cli", "kafka_", "worker"))], flat
    assert "streams.kafka.worker" in GRAPH and "streams.cli.main" in GRAPH
    # the worker never reaches up into the command line
    bad = {(m, d) for m, deps in GRAPH.items() if m.startswith("streams.kafka")
           for d in deps if d.startswith("streams.cli")}
    assert not bad, sorted(bad)


def test_no_import_cycle_among_our_modules() -> None:
    graph = {m: {d for d in deps if d != m} for m, deps in GRAPH.items()}
    # a package's __init__ re-exporting its own modules is not a cycle of behaviour
    for m, deps in graph.items():
        graph[m] = {d for d in deps if not m.startswith(d + ".")}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep):] + [dep] if dep in path else [node, dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])
    assert not cycles, f"import cycles: {cycles[:5]}"
