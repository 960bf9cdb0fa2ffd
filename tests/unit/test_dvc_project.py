"""The DVC project files as a fresh clone sees them: none may be git-ignored, because DVC
refuses an ignored ``dvc.lock`` (``make demo`` once failed on exactly that)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DVC_FILES = ["dvc.yaml", "dvc.lock", "data.dvc", ".dvc/config", ".dvcignore"]


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
