"""A real `dvc repro` of the prepare + validate stages in a temporary git repository,
`dvc push` / `dvc pull` through the default local-folder remote, and `dove feedback export`
followed by `dvc repro`: the new pairs reach the prepared data with no forced stage."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dove_model.data.versioning import data_version, version_data

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DATA_STAGES = ("prepare", "validate")


def _run(*args: str, cwd: Path) -> str:
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's DVC files and data code in a fresh git + DVC repository, small synth."""
    root = tmp_path_factory.mktemp("dvc") / "project"
    root.mkdir()
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    pipeline["stages"] = {k: v for k, v in pipeline["stages"].items() if k in DATA_STAGES}
    (root / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["synth"]["n_images"] = 28
    params["validate"]["workers"] = 1
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for package in ("dove_model/data", "dove_model/quality"):
        shutil.copytree(
            REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copytree(REPO / ".dvc", root / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp"))
    shutil.copy(REPO / ".dvcignore", root / ".dvcignore")
    shutil.copy(REPO / "data-feedback.json", root / "data-feedback.json")  # prepare's dep
    _run("git", "init", "-q", cwd=root)
    _run("dove", "data", "synth", "--out", "data/synth", "--workers", "1", cwd=root)
    return root


def test_dvc_repro_prepare_and_validate(project: Path) -> None:
    version = version_data(project, push=False)
    assert version.md5.endswith(".dir") and version.n_files == 28 + 2
    out = _run("dvc", "repro", cwd=project)
    assert "Running stage 'prepare'" in out and "Running stage 'validate'" in out
    assert "data gate PASSED" in out
    summary = json.loads((project / "reports/validation/summary.json").read_text())
    assert summary["passed"] is True and summary["counts"]["images"] == 28
    assert (project / "artifacts/prepared/synth/manifest.parquet").is_file()
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(DATA_STAGES)
    assert "up to date" in _run("dvc", "status", cwd=project)


def test_fresh_clone_re_renders_the_same_data_version(project: Path) -> None:
    """A fresh clone has data.dvc but no data/ and an empty remote: `dove data version`
    re-renders it (other worker count) and DVC finds the very same md5."""
    before = data_version(project)
    shutil.rmtree(project / "data")
    out = _run("dove", "data", "version", "--no-push", cwd=project)
    assert f"data version {before}" in out
    assert data_version(project) == before


def test_push_and_pull_through_the_local_remote(project: Path) -> None:
    _run("dvc", "push", cwd=project)
    assert (project / "dvc-remote" / "files" / "md5").is_dir()  # .dvc/config: url ../dvc-remote
    shutil.rmtree(project / "data")
    shutil.rmtree(project / ".dvc" / "cache")
    _run("dvc", "pull", "data.dvc", cwd=project)
    assert len(list((project / "data" / "synth" / "images").iterdir())) == 28
    assert "up to date" in _run("dvc", "status", "data.dvc", cwd=project)


def test_build_default_dataset_for_the_demo(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from dove_model.config import load_params
    from dove_model.testing.default_dataset import build_default_dataset

    monkeypatch.chdir(project)
    console = Console(record=True, width=100)
    built = build_default_dataset(load_params("params.yaml"), ".", console=console)
    assert built.version is not None and built.version.md5 == data_version(project)
    assert built.validation.passed
    assert built.dataset_dir == Path("artifacts/prepared/synth")
    screen = console.export_text()
    assert "data gate PASSED" in screen and "image_in_one_split" in screen
    assert len(screen.splitlines()) < 40  # one screen


def _log_marks(log_dir: Path, manifest: pd.DataFrame, n: int = 24) -> list[str]:
    """``n`` searches on train images by four clients, each with one mark (every eighth
    not relevant); the query is a train caption with its first word moved to the end (known
    words, a new text). Returns the relevant queries' texts."""
    from dove_model.feedback.files import FileStore
    from dove_model.feedback.records import FeedbackRecord, QueryRecord
    from dove_model.loop_params import QueryLogParams

    train = manifest[manifest["split"] == "train"].drop_duplicates("caption").head(n)
    store, relevant = FileStore(log_dir, QueryLogParams()), []
    for i, (image_id, caption) in enumerate(zip(train["image_id"], train["caption"], strict=True)):
        words = str(caption).split()
        text = " ".join([*words[1:], words[0]])
        hits = [(str(image_id), 0.9)]
        search = QueryRecord.of_search(text, 5, hits, ("1", "v1"), 2.0, "text", f"client{i % 4}")
        mark = FeedbackRecord(search.query_id, str(image_id), i % 8 != 7, 1, client=search.client)
        store.write([search, mark])
        relevant += [text] if mark.relevant else []
    store.close()
    return relevant


def test_a_feedback_export_re_prepares_on_the_next_repro(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dove feedback export` writes a new data version and rewrites the stamp prepare
    depends on: the next `dvc repro` re-prepares with the users' pairs, the one after does
    nothing."""
    from dove_model.data.feedback_rows import PROVENANCE_FILE
    from dove_model.data.manifest import read_manifest
    from dove_model.hashing import sha256_file

    version_data(project, push=False)  # a data version to start from (a no-op if there is)
    _run("dvc", "repro", cwd=project)  # whatever the earlier tests left: now up to date
    prepared = project / "artifacts/prepared/synth"
    before = read_manifest(prepared)
    assert not (prepared / PROVENANCE_FILE).exists()
    old_version = data_version(project)
    monkeypatch.setenv("DOVE_QUERYLOG_DIR", str(project / "querylog"))
    relevant = _log_marks(project / "querylog", before)
    out = _run("dove", "feedback", "export", cwd=project)
    assert "wrote data/feedback/pairs.parquet" in out
    assert data_version(project) != old_version  # `dvc add data` ran
    stamp = json.loads((project / "data-feedback.json").read_text())
    assert stamp["pairs_sha256"] == sha256_file(project / "data/feedback/pairs.parquet")
    assert "up to date" not in _run("dvc", "status", "prepare", cwd=project)

    out = _run("dvc", "repro", cwd=project)  # no -f
    assert "Running stage 'prepare'" in out and "Running stage 'validate'" in out
    after = read_manifest(prepared)
    added = after[~after["caption_id"].isin(before["caption_id"])]
    assert sorted(added["caption"]) == sorted(relevant) and set(added["split"]) == {"train"}
    assert len(pd.read_parquet(prepared / PROVENANCE_FILE)) == len(relevant)

    again = _run("dvc", "repro", cwd=project)
    assert "Running stage" not in again, again
    assert "up to date" in _run("dvc", "status", cwd=project)
