"""The import graph runs downhill only (docs/contracts.md, "Layers").

Each package (or top-level module) of ``dove_model`` has a rank; a module may import only
from packages of a lower rank (imports inside one package are free). Nothing in the library
imports the top-level shells (``components``, ``dags``, ``service.py``, ``infra``), and the
test-support package is imported by no product code.
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
    "atomic": 0,
    "hashing": 0,
    "allocator": 0,  # the C library only
    "loop_params": 0.5,  # the feedback/monitoring sections config.py adds
    "device": 1,  # raises errors.ConfigError
    "config": 1,
    "model": 2,
    "data": 3,
    "geo": 3.5,  # scenes -> georeferenced chips (a dataset in data's layout)
    "quality": 4,
    "inference": 5,
    "dual_inference": 5.5,  # the dual family behind inference's API
    "encoders": 5.7,  # model directory -> DoveEncoder | DualEncoder
    "evaluation": 6,
    "training": 7,
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


def package_of(path: Path) -> str:
    part = path.relative_to(LIBRARY).parts[0]
    return part.removesuffix(".py")


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, nested ones included."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
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
            target = parts[1]
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
