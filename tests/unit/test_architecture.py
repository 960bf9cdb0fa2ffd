"""The import graph runs downhill only (docs/contracts.md, "Layers").

Each package (or top-level module) of ``dove_model`` has a rank; a module may import only
from packages of a lower rank (imports inside one package are free). Two kinds of module in
``families`` sit low on purpose: the family registry (names -> packages, imported lazily) and
each family's ``settings.py`` (plain pydantic data), so that ``config.py`` can validate every
family's settings without importing model code. Nothing in the library imports the top-level
shells (``components``, ``dags``, ``service.py``, ``infra``), the test-support package is
imported by no product code, and no module imports itself back through a circle. Imports
under ``if TYPE_CHECKING:`` are annotations only and are not counted.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIBRARY = REPO / "dove_model"
TOP_LEVEL_SHELLS = ("components", "dags", "service", "infra")
# lower ranks are lower layers; a package imports only from strictly lower ranks
RANKS = {
    "errors": 0,
    "families.registry": 0.5,  # family name -> package, imported lazily
    "atomic": 0,
    "hashing": 0,
    "allocator": 0,  # the C library only
    "loop_params": 0.5,  # the feedback/monitoring sections config.py adds
    "device": 1,  # raises errors.ConfigError
    "config": 1,
    "families.settings": 1.2,  # each family's settings: data, validated by config
    "metrics": 1.5,  # recall metrics: numpy only
    "model": 2,  # what families share: towers, preprocessing, views, losses, the model dir
    "data": 3,
    "geo": 3.5,  # scenes -> georeferenced chips (a dataset in data's layout)
    "quality": 4,
    "training": 5,  # what every family's training gets (training/run.py)
    "families": 6,  # one folder per family + the contract and the dispatch
    "evaluation": 7,
    "index": 8,
    "feedback": 8.5,  # query log, relevance feedback, export to a data version
    "monitoring": 8.7,  # drift of the queries, online proxies, the daily report
    "registry": 9,
    "serving": 10,
    "pipeline": 11,
    "demo": 12,
    "commands": 13,
    "cli": 14,
    "__main__": 15,
    "testing": 16,  # test support: above everything, imported by no product code
}


def layer_of(module: str) -> str:
    """The layer of a module named relative to ``dove_model`` (``families.dove.settings``)."""
    parts = module.split(".")
    if parts[0] == "families" and parts[1:] == ["registry"]:
        return "families.registry"
    if parts[0] == "families" and len(parts) == 3 and parts[2] == "settings":
        return "families.settings"
    return parts[0]


def module_of(path: Path) -> str:
    return ".".join(path.relative_to(LIBRARY).with_suffix("").parts)


def package_of(path: Path) -> str:
    return layer_of(module_of(path))


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                inside.update(id(n) for n in ast.walk(child))
    return inside


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, nested ones included, those
    for type checking only left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def library_files() -> list[Path]:
    return sorted(p for p in LIBRARY.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_library_package_has_a_rank() -> None:
    packages = {package_of(p) for p in library_files()} - {"__init__"}
    assert packages <= set(RANKS), f"give these a rank: {sorted(packages - set(RANKS))}"


def test_the_library_never_imports_a_top_level_shell() -> None:
    found = [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for path in library_files()
        for line, name in imports(path)
        if name.split(".")[0] in TOP_LEVEL_SHELLS
    ]
    assert not found, "\n".join(found)


def test_imports_run_downhill() -> None:
    upward = []
    for path in library_files():
        source = package_of(path)
        if source == "__init__":
            continue
        for line, name in imports(path):
            parts = name.split(".")
            if parts[0] != "dove_model" or len(parts) < 2:
                continue
            target = layer_of(".".join(parts[1:]))
            if target != source and RANKS.get(target, 99) >= RANKS[source]:
                upward.append(f"{path.relative_to(LIBRARY)}:{line} ({source}) imports {name}")
    assert not upward, "imports that run up a layer:\n" + "\n".join(upward)


@pytest.mark.parametrize("shell", ["infra", "components", "dags"])
def test_top_level_shells_import_the_library_not_each_other_upward(shell: str) -> None:
    """Above the library, in this order: infra/ (images, the stack, manifests) uses the
    library; components/ may use both (the DockerRunner's engine); dags/ may use all three;
    none is used the other way."""
    allowed = {
        "infra": {"dove_model"},
        "components": {"dove_model", "infra"},
        "dags": {"dove_model", "components", "infra"},
    }[shell]
    wrong = [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for path in sorted((REPO / shell).rglob("*.py"))
        for line, name in imports(path)
        if name.split(".")[0] in {*TOP_LEVEL_SHELLS, "dove_model"} - allowed - {shell}
    ]
    assert not wrong, "\n".join(wrong)


def _import_graph() -> dict[str, set[str]]:
    """Library module -> the library modules it imports (a package import counts as its
    ``__init__``; ``from package import module`` as the module)."""
    modules = {"dove_model." + module_of(p).removesuffix(".__init__"): p for p in library_files()}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = {t for t in _imported_modules(path, modules) if t != name}
    return graph


def _imported_modules(path: Path, modules: dict[str, Path]) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = [f"{node.module}.{a.name}" for a in node.names]
            found = [s for s in submodules if s in modules]
            yield from found
            if len(found) < len(submodules) and node.module in modules:
                yield node.module


def test_no_import_circles() -> None:
    """No module reaches itself through its imports (lazy ones included): a circle means
    two modules that are really one, or a constant in the wrong place."""
    graph = _import_graph()
    circles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                circles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


# uses of "dove" that name the project (its command, experiment, tags), not the model family
PROJECT_NAME_USES = {"name", "DOCS_SITE", "add_pandas", "experiment", "tags", "Div"}
PROJECT_NAME_SHELL_USES = {"tags", "DEFAULT_EXPERIMENT", "Div"}


def _family_literals(path: Path) -> Iterator[tuple[int, str, str]]:
    """(line, literal, owner) of every string constant equal to a family name; the owner is
    what the literal is bound to (an assignment target, keyword or called function), or
    ``Div`` for a path (``bin / "dove"``: the command)."""
    from dove_model.families.registry import family_names

    names = set(family_names())
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {id(c): n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value in names:
            yield node.lineno, str(node.value), _owner(node, parents)


def _owner(node: ast.AST, parents: dict[int, ast.AST]) -> str:
    while id(node) in parents:
        node = parents[id(node)]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            return "Div"
        if isinstance(node, ast.Assign | ast.AnnAssign):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            return ast.unparse(target).split(".")[-1]
        if isinstance(node, ast.keyword):
            return str(node.arg)
        if isinstance(node, ast.Call):
            return ast.unparse(node.func).split(".")[-1]
    return "module"


def test_family_names_appear_only_in_their_folders_and_the_registry() -> None:
    """Dispatch on a family happens in ``families/`` alone: no library module outside a
    family's own folder and the registry spells a family's name. Test support
    (``dove_model/testing``) writes profiles, as params.yaml does, and may."""
    allowed = {LIBRARY / "families" / name for name in ("dove", "dual", "clip")}
    allowed.add(LIBRARY / "testing")
    found = []
    for path in library_files():
        if any(d in path.parents for d in allowed) or path == LIBRARY / "families/registry.py":
            continue
        found += [
            f"{path.relative_to(REPO)}:{line} {literal!r} ({owner})"
            for line, literal, owner in _family_literals(path)
            if literal != "dove" or owner not in PROJECT_NAME_USES
        ]
    for shell in TOP_LEVEL_SHELLS:
        for path in sorted(REPO.glob(f"{shell}/**/*.py")) + sorted(REPO.glob(f"{shell}.py")):
            found += [
                f"{path.relative_to(REPO)}:{line} {literal!r} ({owner})"
                for line, literal, owner in _family_literals(path)
                if literal != "dove" or owner not in PROJECT_NAME_SHELL_USES
            ]
    assert not found, "family names outside families/:\n" + "\n".join(found)


def test_the_low_modules_of_families_import_first_on_their_own() -> None:
    """config validates a family's settings by importing them on first use: importing a
    settings module (or the registry) first, in a fresh interpreter, must not find config
    half-built (the default parameters are built on use, not at import)."""
    import subprocess
    import sys

    from dove_model.families.registry import FAMILY_PACKAGES

    modules = ["dove_model.families.registry", "dove_model.testing.deployment"]
    modules += [f"{package}.settings" for package in FAMILY_PACKAGES.values()]
    for module in modules:
        done = subprocess.run(
            [sys.executable, "-c", f"import {module}; import dove_model.config as c; c.Params()"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{module}: {done.stderr[-1500:]}"
