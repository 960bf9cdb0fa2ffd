"""The built wheel holds everything `dove pipeline` and the Airflow DAG import: the library
and `components/` (the KFP components and the pipeline), with the `dove.commands` entry
points that add `dove pipeline`, `dove images` and `dove stack` (infra/) to the `dove`
command. Checked from the wheel's own files, with this checkout taken off the import path."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration

FROM_THE_WHEEL = """
import sys
from pathlib import Path
site, repo = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
sys.path[:] = [str(site)] + [p for p in sys.path if p and Path(p).resolve() != repo]
import components.pipeline, dove_model.cli, dove_model.pipeline.retraining  # what the DAG uses
for module in (components.pipeline, dove_model.cli, dove_model.pipeline.retraining):
    assert Path(module.__file__).resolve().is_relative_to(site), module.__file__
sys.argv = ["dove", "pipeline", "compile", "--out", "compiled.yaml"]
dove_model.cli.main()
"""


def _uv() -> list[str]:
    found = shutil.which("uv")
    if found:
        return [found]
    done = subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True)
    if done.returncode != 0:
        pytest.skip("uv is not installed (make setup installs it)")
    return [sys.executable, "-m", "uv"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [*_uv(), "build", "--wheel", "--offline", "--out-dir", str(out), str(REPO_ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (built,) = out.glob("*.whl")
    return built


def test_the_wheel_packages_the_components_and_the_command_entry_point(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("pipeline", "compile", "cli", "prepare", "register"):
        assert f"components/{module}.py" in names
    assert "dove_model/pipeline/run.py" in names
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    groups = text.split("[dove.commands]\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert sorted(groups) == [
        "images = infra.images.cli:app",
        "pipeline = components.cli:app",
        "stack = infra.stack.cli:app",
    ]
    for module in ("infra/images/build.py", "infra/stack/stack.py"):
        assert module in names


def test_dove_pipeline_compile_runs_from_the_wheel_alone(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO_ROOT / "params.yaml", project / "params.yaml")
    done = subprocess.run(
        [sys.executable, "-c", FROM_THE_WHEEL, str(site), str(REPO_ROOT)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    committed = (REPO_ROOT / "components" / "pipeline.yaml").read_text(encoding="utf-8")
    assert (project / "compiled.yaml").read_text(encoding="utf-8") == committed
