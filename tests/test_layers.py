"""The package layering of docs/architecture.md holds, counting imports inside functions too: no cycle
between packages (or top-level modules), and the numpy core and evaluation never reach upwards."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import sitesight

ROOT = Path(sitesight.__file__).parent
UPPER = {"sliced", "mining", "report", "compare", "engines", "cli", "demo", "models", "models.detector",
         "models.anomaly", "predictors", "curation", "synth"}  # fmt: skip


def _node(module: str) -> str:
    """Package of a ``sitesight.*`` module: ``sliced``, ``models.detector``, or a top-level module's name."""
    parts = module.split(".")[1:]
    if not parts:
        return "sitesight"
    if parts[0] == "models" and len(parts) > 1 and (ROOT / "models" / parts[1]).is_dir():
        return f"models.{parts[1]}"
    return parts[0]


def _edges() -> dict[str, dict[str, str]]:
    """node → {imported node: one module that imports it}, every import statement of the package."""
    edges: dict[str, dict[str, str]] = defaultdict(dict)
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("").parts
        module = ".".join(("sitesight", *rel)).removesuffix(".__init__")
        src = _node(module)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sitesight":
                if node.module == "sitesight":  # `from sitesight import x`: a submodule, or the numpy core's lazy names
                    targets = [f"sitesight.{a.name}" if (ROOT / a.name).is_dir() or (ROOT / f"{a.name}.py").exists()
                               else "sitesight.detections" for a in node.names]  # fmt: skip
                else:
                    targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.split(".")[0] == "sitesight"]
            for target in targets:
                dst = _node(target)
                if dst != src and src not in ("sitesight", "__main__"):
                    edges[src].setdefault(dst, module)
    return edges


def test_no_cycle_between_packages():
    edges = _edges()
    graph = {a: set(b) for a, b in edges.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(v: str) -> None:
        state[v] = 1
        path.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                cycle = path[path.index(w):] + [w]
                raise AssertionError("import cycle: " + " -> ".join(f"{a} ({edges[a][b]})" for a, b in zip(cycle, cycle[1:], strict=False)))
            if w not in state:
                visit(w)
        path.pop()
        state[v] = 2

    for v in sorted(graph):
        if v not in state:
            visit(v)


def test_core_and_evaluation_do_not_reach_upwards():
    edges = _edges()
    for low in ["evaluation", "formats", "detections", "boxes", "frametable", "identity", "dataset"]:
        upward = {dst: via for dst, via in edges.get(low, {}).items() if dst in UPPER}
        assert not upward, f"{low} imports {upward}"
