"""`dove` finds command groups that live above the library through entry points: the
installed `dove.commands` group gives `dove pipeline` (components/cli.py), and a group whose
package is missing is left out with a warning instead of breaking every command.

The groups under test are real distributions on sys.path (a dist-info folder and a module),
found by importlib.metadata as installed packages are."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dove_model.cli import COMMAND_GROUP, add_command_groups, app

GROUP_MODULE = """
import typer
app = typer.Typer()
@app.command()
def hello() -> None:
    print("hello from the group")
@app.command()
def other() -> None:
    pass
"""


def _install(site: Path, group: str, entries: dict[str, str]) -> None:
    dist = site / "dove_test_commands-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: dove-test-commands\nVersion: 0.1\n"
    )
    lines = "".join(f"{name} = {value}\n" for name, value in entries.items())
    (dist / "entry_points.txt").write_text(f"[{group}]\n{lines}")


def _root() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _callback() -> None:
        """A root with a callback, like `dove`."""

    return root


def test_the_installed_project_registers_dove_pipeline() -> None:
    (entry,) = [e for e in entry_points(group=COMMAND_GROUP) if e.name == "pipeline"]
    assert entry.value == "components.cli:app"
    result = CliRunner().invoke(app, ["pipeline", "--help"])
    assert result.exit_code == 0 and "compile" in result.output and "run" in result.output


def test_a_group_is_added_under_its_name_and_a_missing_package_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    group = "dove.test-commands"
    (tmp_path / "dove_test_group.py").write_text(GROUP_MODULE)
    _install(tmp_path, group, {"extra": "dove_test_group:app", "gone": "dove_no_such_pkg.cli:app"})
    monkeypatch.syspath_prepend(str(tmp_path))
    root = _root()
    assert add_command_groups(root, group) == ["extra"]
    assert "warning: no `dove gone`: dove_no_such_pkg.cli:app" in capsys.readouterr().err
    result = CliRunner().invoke(root, ["extra", "hello"])
    assert result.exit_code == 0 and "hello from the group" in result.output


def test_a_group_whose_own_imports_fail_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = "dove.test-broken-commands"
    (tmp_path / "dove_test_broken.py").write_text("import dove_no_such_dependency\n")
    _install(tmp_path, group, {"broken": "dove_test_broken:app"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="dove_no_such_dependency"):
        add_command_groups(_root(), group)
