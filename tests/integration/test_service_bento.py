"""`bentoml build` works offline from bentofile.yaml, the Bento pins the imported model, and
the built Bento serves (its model taken from the BentoML store, not from the source tree)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from dove_model.model.directory import model_fingerprint
from dove_model.serving.launch import PROJECT_ROOT, running_service, serving_env
from dove_model.testing.deployment import deploy_synthetic

pytestmark = pytest.mark.integration


def test_bento_builds_offline_and_serves(tmp_path: Path) -> None:
    deployment = deploy_synthetic(tmp_path / "work")
    env = serving_env(bentoml_home=deployment.bentoml_home, index_dir=deployment.index_dir)
    for name in ("DOVE_MODEL_DIR", "DOVE_MODEL_TAG", "DOVE_API_KEY", "DOVE_PARAMS"):
        env.pop(name, None)
    env.update({"PIP_NO_INDEX": "1", "UV_OFFLINE": "1"})  # nothing may be downloaded
    build = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "-f", "bentofile.yaml", "--output", "tag", "."],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    tag = build.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    name, version = tag.split(":")
    bento_dir = deployment.bentoml_home / "bentos" / name / version
    manifest = yaml.safe_load((bento_dir / "bento.yaml").read_text())
    assert [m["tag"] for m in manifest["models"]] == [deployment.model_tag]
    for packed in ("src/service.py", "src/params.yaml", "src/serving/static/index.html",
                   "src/dove_model/serving/search.py", "env/python/requirements.txt"):  # fmt: skip
        assert (bento_dir / packed).is_file(), packed
    assert not list((bento_dir / "src").rglob("test_*.py"))

    # Serve the built Bento from an unrelated folder: code and model come from the store.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with running_service(
        env, target=tag, project_root=elsewhere, log_file=tmp_path / "log"
    ) as served:
        info = httpx.post(f"{served.url}/info", json={}, timeout=30).json()
        assert info["model_name"] == "dove-rs-retrieval"
        assert info["model_fingerprint"] == model_fingerprint(deployment.model_dir)
        page = httpx.get(f"{served.url}/ui/", timeout=30)
        assert page.status_code == 200 and "DOVE" in page.text
        hits = httpx.post(
            f"{served.url}/search_images", json={"query": "a lake", "k": 3}, timeout=30
        ).json()["results"]
        assert len(hits) == 3
