"""Architecture targets as a check: modules <= 400 lines, functions <= 60 lines (tables
excepted), public functions <= 7 parameters, no import cycle between deepcast's modules
(imports inside functions count too). ``python scripts/check_style.py`` lists what is
over; exit 1 when anything is."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("deepcast", "features", "forecasting", "pipelines", "flows")
MAX_MODULE, MAX_FUNCTION, MAX_PARAMS = 400, 60, 7


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = fn.args
    names = [*a.posonlyargs, *a.args, *a.kwonlyargs]
    return len([n for n in names if n.arg not in ("self", "cls")])


FOLDERS = {"deepcast.features": "features", "deepcast.forecasting": "forecasting",
           "deepcast.pipelines": "pipelines", "deepcast.flows": "flows", "deepcast": "deepcast"}


def _module_file(name: str) -> Path | None:
    for prefix, folder in FOLDERS.items():
        if name == prefix or name.startswith(prefix + "."):
            rest = name[len(prefix):].lstrip(".").split(".") if name != prefix else []
            base = ROOT / folder / Path(*rest) if rest else ROOT / folder
            for cand in (base.with_suffix(".py"), base / "__init__.py"):
                if cand.is_file():
                    return cand
    return None


def _imports(path: Path) -> set[Path]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import module` imports the module; `from pkg import name`, pkg
            subs = [f"{node.module}.{a.name}" for a in node.names]
            names = [s for s in subs if _module_file(s) not in (None, _module_file(node.module))]
            if len(names) < len(subs):
                names.append(node.module)
        for name in names:
            target = _module_file(name)
            if target is not None and target != path:
                found.add(target)
    return found


def cycles() -> list[str]:
    """Strongly connected groups of modules (Tarjan), each one a cycle to break."""
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    graph = {f: _imports(f) for f in files}
    index: dict[Path, int] = {}
    low: dict[Path, int] = {}
    stack: list[Path] = []
    out: list[str] = []

    def visit(v: Path) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(str(w.relative_to(ROOT)))
                if w == v:
                    break
            if len(group) > 1:
                out.append("import cycle: " + ", ".join(sorted(group)))

    sys.setrecursionlimit(10_000)
    for f in files:
        if f not in index:
            visit(f)
    return out


def problems() -> list[str]:
    out = cycles()
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            text = path.read_text()
            rel = path.relative_to(ROOT)
            if (n := len(text.splitlines())) > MAX_MODULE:
                out.append(f"{rel}: {n} lines (> {MAX_MODULE})")
            for node in ast.walk(ast.parse(text)):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION:
                    out.append(f"{rel}:{node.lineno} {node.name}: {length} lines")
                if not node.name.startswith("_") and _params(node) > MAX_PARAMS:
                    out.append(f"{rel}:{node.lineno} {node.name}: {_params(node)} parameters")
    return out


if __name__ == "__main__":
    found = problems()
    print("\n".join(found) or "all within the targets")
    sys.exit(1 if found else 0)
