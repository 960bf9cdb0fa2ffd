"""bentofile.yaml is valid for BentoML and its requirements are exactly the project's lock."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXPORT = ["export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project", "--no-annotate"]


def pins(text: str) -> list[str]:
    return sorted(line for line in text.splitlines() if line and not line.startswith("#"))


def test_bentofile_parses_and_points_at_existing_files() -> None:
    from bentoml._internal.bento.build_config import BentoBuildConfig

    raw = yaml.safe_load((REPO / "bentofile.yaml").read_text())
    config = BentoBuildConfig.from_yaml((REPO / "bentofile.yaml").open())
    assert config.service == "service:DoveRetrieval"
    assert config.python.lock_packages is False
    assert (REPO / config.python.requirements_txt).is_file()
    assert [str(m.tag) for m in config.models] == ["dove-rs-retrieval:latest"]
    assert "serving/static/*" in raw["include"]


def test_requirements_are_the_uv_lock_export() -> None:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv not on PATH")
    exported = subprocess.run(
        [uv, *EXPORT], cwd=REPO, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    committed = (REPO / "serving" / "requirements.txt").read_text()
    assert pins(exported) == pins(committed), (
        "serving/requirements.txt is stale: regenerate it with "
        f"`uv {' '.join(EXPORT)} -o serving/requirements.txt`"
    )
    assert any(line.startswith("bentoml==") for line in pins(committed))
