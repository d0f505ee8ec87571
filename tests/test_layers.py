"""The package's layers (ARCHITECTURE.md): each subpackage imports only from itself and the
layers below it, no module imports another in a cycle (function-level and ``TYPE_CHECKING``
imports included), the specification layer does not import the PyMC backend's libraries, and
no name of ours is imported under another name."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
from paths import ROOT

PACKAGE = ROOT / "bayes_sor"
#: bottom to top; the package root's modules (errors, files) are layer 0
LAYERS = (
    "",
    "spec",
    "data",
    "model",
    "sampling",
    "posterior",
    "runs",
    "report",
    "checks",
    "comparison",
    "sbc",
    "api",
    "cli",
)
#: the package facade and ``python -m bayes_sor`` sit on top of everything
FACADES = {"bayes_sor", "bayes_sor.__main__"}
BACKEND_LIBRARIES = {"pymc", "pytensor", "nutpie", "numba"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    if module in FACADES:
        return len(LAYERS)
    parts = module.split(".")
    if len(parts) == 2 and parts[1] not in LAYERS:  # a root module such as bayes_sor.errors
        return 0
    return LAYERS.index(parts[1])


def imports(module: str) -> list[tuple[ast.stmt, str, bool]]:
    """(statement, imported module or package, inside a function) for every import of ours
    and of every other library (whose name is then the library's)."""
    tree = ast.parse(MODULES[module].read_text())
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((child, a.name, in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative: resolve against this module's package
                    package = (
                        module
                        if MODULES[module].name == "__init__.py"
                        else module.rsplit(".", 1)[0]
                    )
                    for _ in range(child.level - 1):
                        package = package.rsplit(".", 1)[0]
                    base = f"{package}.{base}" if base else package
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    found.append((child, sub if sub in MODULES else base, in_function))
            visit(child, nested)

    visit(tree, False)
    return found


def ours(name: str) -> bool:
    return name == "bayes_sor" or name.startswith("bayes_sor.")


def import_graph() -> dict[str, set[str]]:
    return {
        m: {target for _, target, _ in imports(m) if ours(target) and target != m} for m in MODULES
    }


def test_the_layer_table_covers_every_subpackage():
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert subpackages == set(LAYERS) - {""}


def test_no_module_imports_from_a_higher_layer():
    upward = [
        f"{m} (layer {LAYERS[layer(m)] or 'root'}) imports {t} "
        f"(layer {LAYERS[layer(t)] if layer(t) < len(LAYERS) else 'facade'})"
        for m, targets in import_graph().items()
        for t in sorted(targets)
        if layer(t) > layer(m)
    ]
    assert upward == []


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a list of modules, first == last), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := walk(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := walk(start)):
            return cycle
    return None


def test_find_cycle_finds_a_cycle_through_three_modules_and_none_in_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle():
    graph = import_graph()
    # the facade imports the subpackages it re-exports; they never import it back
    assert find_cycle(graph) is None


def test_the_specification_layer_does_not_import_the_pymc_backend():
    found = [
        f"{m} imports {t}"
        for m in MODULES
        if layer(m) <= LAYERS.index("spec")
        for _, t, _ in imports(m)
        if t.split(".")[0] in BACKEND_LIBRARIES
    ]
    assert found == []


def test_no_name_of_ours_is_imported_under_another_name():
    aliased = [
        f"{m}:{stmt.lineno} {a.name} as {a.asname}"
        for m in MODULES
        for stmt, target, _ in imports(m)
        if ours(target)
        for a in stmt.names
        if a.asname
    ]
    assert aliased == []


def reason_above(lines: list[str], lineno: int) -> bool:
    """Whether a comment precedes the import on line ``lineno`` (1-based), above the block of
    imports it belongs to (blank lines, other imports, ``try:`` and the choice of matplotlib's
    backend between them)."""
    for line in reversed(lines[: lineno - 1]):
        text = line.strip()
        if text.startswith("#"):
            return True
        if text and not (
            text.startswith(("import ", "from ", "matplotlib.use(")) or text == "try:"
        ):
            return False
    return False


def test_every_function_level_import_says_why_in_a_comment_above():
    """Imports belong at the top; one inside a function is heavy and needed by few calls, or
    optional, and says so."""
    unexplained = []
    for m, path in MODULES.items():
        lines = path.read_text().splitlines()
        unexplained += [
            f"{m}:{stmt.lineno} imports {target}"
            for stmt, target, in_function in imports(m)
            if in_function and not reason_above(lines, stmt.lineno)
        ]
    assert unexplained == []


def test_reason_above_needs_a_comment_above_the_import_block():
    lines = [
        "def f():",
        "    # numba takes seconds",
        "    import numba",
        "",
        "    import nutpie",
        "    x = 1",
        "    import os",
    ]
    assert reason_above(lines, 3) and reason_above(lines, 5)
    assert not reason_above(lines, 7)


@pytest.mark.parametrize(
    "source, problem",
    [
        ("from bayes_sor.cli.main import run\n", "upward"),
        ("from bayes_sor.errors import DataError as Bad\n", "alias"),
        ("import pymc\n", "backend"),
    ],
)
def test_the_checks_catch_a_violation(source, problem, tmp_path, monkeypatch):
    """A spec module that imports the CLI, renames an import, or imports PyMC is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text(source)
    monkeypatch.setitem(MODULES, "bayes_sor.spec.bad", bad)
    checks = {
        "upward": test_no_module_imports_from_a_higher_layer,
        "alias": test_no_name_of_ours_is_imported_under_another_name,
        "backend": test_the_specification_layer_does_not_import_the_pymc_backend,
    }
    with pytest.raises(AssertionError):
        checks[problem]()


ARCHITECTURE = PACKAGE.parent / "ARCHITECTURE.md"
#: a backticked file of the repository: a module, or a path with a folder (a bare ``x.csv`` is
#: a run folder's file)
FILE_REFERENCE = re.compile(r"`([\w./<>-]+\.(?:py|md|lav|csv|yaml|toml))`")


def referenced_files(text: str) -> set[str]:
    return {
        m for m in FILE_REFERENCE.findall(text) if "<" not in m and ("/" in m or m.endswith(".py"))
    }


def test_architecture_lists_every_module():
    listed = referenced_files(ARCHITECTURE.read_text())
    modules = {
        str(p.relative_to(PACKAGE))
        for p in MODULES.values()
        if p.name != "__init__.py" or p.parent == PACKAGE
    }
    assert sorted(modules - listed) == []


def test_every_file_architecture_names_exists():
    """A module under bayes_sor/, anything else from the repository's root."""
    root = PACKAGE.parent
    missing = sorted(
        name
        for name in referenced_files(ARCHITECTURE.read_text())
        if not (PACKAGE / name).is_file() and not (root / name).is_file()
    )
    assert missing == []


def test_the_architecture_checks_catch_an_unlisted_module_and_a_stale_reference(
    tmp_path, monkeypatch
):
    text = ARCHITECTURE.read_text()
    fake = tmp_path / "ARCHITECTURE.md"
    fake.write_text(text.replace("`spec/matrices.py`", "`spec/matrix.py`"))
    monkeypatch.setattr(sys.modules[__name__], "ARCHITECTURE", fake)
    with pytest.raises(AssertionError):
        test_architecture_lists_every_module()
    with pytest.raises(AssertionError):
        test_every_file_architecture_names_exists()


def test_report_sections_are_written_through_the_check_result_writer_alone():
    """Checks and the comparison add their report sections through ``write_result``, so the
    files and the section of a result are written in one place."""
    writers = sorted(
        m
        for m, targets in import_graph().items()
        if "bayes_sor.report.sections" in targets and not m.startswith("bayes_sor.report.")
    )
    assert writers == ["bayes_sor.checks.result"]


#: test files of a layer that test a behaviour across its modules rather than one module
MIRROR_EXCEPTIONS = {
    "cli_input",  # every bad input through the command line, one table
    "moderator_percentiles",  # the moderator's latent percentiles, from model to effects
    "marginal",  # the marginal likelihood against references, across model/
    "frequentist",  # ml_sem and composite against the same lavaan / PROCESS references
}


def test_test_folders_mirror_the_layers():
    """tests/<layer>/ for each layer's tests; besides them only the whole-model correctness
    checks and the reference scripts have folders of their own."""
    folders = {
        p.name
        for p in (ROOT / "tests").iterdir()
        if p.is_dir() and not p.name.startswith((".", "__"))
    }
    assert folders - set(LAYERS) <= {"correctness", "reference_scripts"}, folders
    for folder in folders & set(LAYERS):
        for test in (ROOT / "tests" / folder).glob("test_*.py"):
            stem = test.stem.removeprefix("test_")
            assert (PACKAGE / folder / f"{stem}.py").is_file() or stem in MIRROR_EXCEPTIONS, (
                f"tests/{folder}/{test.name} has no module bayes_sor/{folder}/{stem}.py"
            )
