"""The house's rules, checked: no import cycle in the package (imports inside functions
count), the wings in one order (training and the runtime below the sweeps, the report apart
from the config and training), no module over 300 lines, at most 21 modules in a folder,
every touch of a library's private internals in ``internals.py``; and ``make clean`` never
deletes a run."""

from __future__ import annotations

import ast
import graphlib
import subprocess
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "downsample_study"
MODULES = sorted(PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``path`` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != "downsample_study":
                found.add(name)
    return found - {_name(path)}


def test_no_import_cycle():
    known = {_name(p) for p in MODULES}
    graph = {_name(p): _imports(p, known) for p in MODULES}
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the cycle


# The wings from the ground up: each imports only wings below it. What every job needs
# (runtime) sits below the job, what only a multirun needs (sweeps) above it.
GROUND = ("errors", "choices", "checks", "registry", "storage", "provenance", "internals",
          "console", "layout", "results")
WINGS = ("ground", "nets", "data", "evaluations", "training", "config", "runtime", "job", "sweeps",
         "task", "report", "runs", "cli", "__main__")
# and what a wing above may not reach either: the report reads files (through the one reader
# of a sweep folder), not the live schema or the training code
NEVER = {"report": {"config", "training", "runtime", "job", "task"}}


def _wing(module: str) -> str:
    name = module.split(".")[1] if "." in module else module
    return "ground" if name in GROUND else name


def _wing_imports() -> set[tuple[str, str, str]]:
    """(wing, the wing it imports, the importing module) for every import across wings."""
    known = {_name(p) for p in MODULES}
    return {(_wing(_name(path)), _wing(imported), _name(path)) for path in MODULES
            for imported in _imports(path, known) if _wing(imported) != _wing(_name(path))}


def test_every_module_is_in_a_wing_of_the_order():
    assert {_wing(_name(p)) for p in MODULES if _name(p) != "downsample_study"} <= set(WINGS)


def test_each_wing_imports_only_wings_below_it():
    upward = sorted((module, wing, imported) for wing, imported, module in _wing_imports()
                    if WINGS.index(imported) > WINGS.index(wing))
    assert upward == []


@pytest.mark.parametrize("wing", sorted(NEVER))
def test_a_wing_imports_nothing_of_the_wings_it_must_not_reach(wing):
    reached = sorted((module, imported) for importer, imported, module in _wing_imports()
                     if importer == wing and imported in NEVER[wing])
    assert reached == []


def test_the_error_types_import_nothing_of_the_project():
    known = {_name(p) for p in MODULES}
    assert _imports(PACKAGE / "errors.py", known) == set()


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_over_300_lines(path):
    assert len(path.read_text().splitlines()) <= 300


def test_no_folder_over_21_modules():
    folders = {p.parent for p in MODULES}
    assert max(len(list(f.glob("*.py"))) for f in folders) <= 21


def _private_attribute(node: ast.Attribute) -> bool:
    """``obj._attr`` on anything but self/cls (``os._exit`` is public, dunders are not private)."""
    own = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
    name = node.attr
    return name.startswith("_") and not name.startswith("__") and name != "_exit" and not own


def _private_touches(path: Path) -> list[str]:
    """Imports of private modules or names, and ``obj._attr`` on anything but self/cls."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            private = [a.name for a in node.names if a.name.startswith("_")]
            if any(part.startswith("_") for part in (node.module or "").split(".")) or private:
                found.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Attribute) and _private_attribute(node):
            found.append(f"line {node.lineno}: ._{node.attr.lstrip('_')}")
    return found


@pytest.mark.parametrize("path", [p for p in MODULES if p.name != "internals.py"],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_private_internals_are_touched_only_in_internals(path):
    assert _private_touches(path) == []


def test_the_check_finds_the_touches_in_internals():
    assert len(_private_touches(PACKAGE / "internals.py")) >= 3


def _project_with_outputs(tmp_path: Path) -> dict[str, Path]:
    """A copy of the Makefile beside a run, a sweep and the caches ``make clean`` owns."""
    (tmp_path / "Makefile").write_text((PACKAGE.parents[1] / "Makefile").read_text())
    paths = {
        "run": tmp_path / "outputs" / "2026-12-01" / "10-00-00" / "results.json",
        "sweep": tmp_path / "multirun" / "2026-12-01" / "10-00-00" / "summary.json",
        "keep": tmp_path / "multirun" / ".gitkeep",
        "cache": tmp_path / ".pytest_cache" / "README.md",
        "bytecode": tmp_path / "src" / "pkg" / "__pycache__" / "m.pyc",
    }
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    return paths


def _make(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", *args], cwd=tmp_path, capture_output=True, text=True)


def test_make_clean_removes_caches_and_keeps_every_run(tmp_path):
    paths = _project_with_outputs(tmp_path)
    assert _make(tmp_path, "clean").returncode == 0
    assert {name for name, path in paths.items() if path.exists()} == {"run", "sweep", "keep"}


@pytest.mark.parametrize("confirm", [None, "no", "yes"])
def test_make_clean_outputs_deletes_runs_only_when_confirmed(tmp_path, confirm):
    paths = _project_with_outputs(tmp_path)
    done = _make(tmp_path, "clean-outputs", *([f"CONFIRM={confirm}"] if confirm else []))
    kept = {name for name, path in paths.items() if path.exists()}
    if confirm == "yes":
        assert done.returncode == 0
        assert kept == {"keep", "cache", "bytecode"}
    else:
        assert done.returncode != 0
        assert "CONFIRM=yes" in done.stdout
        assert "\toutputs\n" in done.stdout and "\tmultirun/2026-12-01/" in done.stdout  # sizes
        assert kept == set(paths)
