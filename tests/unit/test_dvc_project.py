"""The DVC project files as a fresh clone sees them: none may be git-ignored, because DVC
refuses an ignored ``dvc.lock`` (``make demo`` once failed on exactly that), and no stage may
need data a fresh clone does not have."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
# data-feedback.json: the prepare stage's dependency on the exported feedback (always present)
DVC_FILES = ["dvc.yaml", "dvc.lock", "data.dvc", ".dvc/config", ".dvcignore", "data-feedback.json"]


@pytest.mark.parametrize("name", DVC_FILES)
def test_dvc_files_are_not_git_ignored(name: str) -> None:
    git = shutil.which("git")
    if git is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    # exit 0: ignored, 1: not ignored; --no-index also judges files that do not exist yet
    done = subprocess.run(
        [git, "check-ignore", "--no-index", "-q", name], cwd=REPO_ROOT, check=False
    )
    assert done.returncode == 1, f"{name} is git-ignored: DVC cannot use it"


def _inside(path: str, folder: str) -> bool:
    return PurePosixPath(path) == PurePosixPath(folder) or PurePosixPath(folder) in (
        PurePosixPath(path).parents
    )


def test_no_stage_depends_on_a_dvc_added_folder() -> None:
    """A fresh clone has data.dvc but not its data: a stage that lists data.dvc's output (or a
    path inside it) makes `dvc repro` stop at once with "missing data 'source': data". The
    stage that needs the data renders or pulls it instead (docs/pipeline.md, "DVC")."""
    tracked = [
        out["path"]
        for dvc_file in REPO_ROOT.glob("*.dvc")
        if dvc_file.is_file()
        for out in yaml.safe_load(dvc_file.read_text(encoding="utf-8"))["outs"]
    ]
    assert tracked, "data.dvc lists no output"
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    wrong = [
        f"{name}: {dep} (in {folder}/, tracked by {folder}.dvc)"
        for name, stage in stages.items()
        for dep in stage.get("deps", [])
        for folder in tracked
        if _inside(dep, folder)
    ]
    assert not wrong, "\n".join(wrong)


def test_prepare_depends_on_the_feedback_stamp_a_fresh_clone_has() -> None:
    """`dove feedback export` writes into data/ (which no stage may list) and rewrites the
    stamp outside it; prepare lists the stamp, which git tracks (DVC stops at a missing
    dependency, and a fresh clone must have it before any stage runs)."""
    from dove_model.config import load_params

    stamp = load_params(REPO_ROOT / "params.yaml").feedback.export.stamp
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    assert "${feedback.export.stamp}" in stages["prepare"]["deps"]
    assert not _inside(stamp, "data") and (REPO_ROOT / stamp).is_file()
    git = shutil.which("git")
    if git is not None and (REPO_ROOT / ".git").exists():
        listed = subprocess.run([git, "ls-files", stamp], cwd=REPO_ROOT, capture_output=True)
        assert listed.stdout.decode().strip() == stamp, f"{stamp} is not tracked by git"
