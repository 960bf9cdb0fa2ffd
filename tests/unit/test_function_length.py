"""No function in the library, the deployment tooling (infra/), the components or the DAGs
runs past about 60 lines (issue 12): a long one is split into named steps, as the training
loop is (step, epoch, end of epoch)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("dove_model", "infra", "components", "dags")
MAX_LINES = 65  # "about 60", signature and docstring included
EXEMPT: dict[str, str] = {  # "path:function" -> the reason it stays long
    "infra/proxy.py:check_directives": "a flat checklist: one NGINX directive per block",
}


def long_functions() -> list[str]:
    found = []
    paths = sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                key = f"{path.relative_to(REPO).as_posix()}:{node.name}"
                if lines > MAX_LINES and key not in EXEMPT:
                    found.append(f"{key} ({lines} lines, line {node.lineno})")
    return found


def test_no_function_is_over_about_60_lines() -> None:
    found = long_functions()
    assert not found, "split these (or add them to EXEMPT with a reason):\n" + "\n".join(found)
