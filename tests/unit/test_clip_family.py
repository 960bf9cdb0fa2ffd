"""The clip family beyond the contract every family passes (tests/unit/test_family_contract):
zero-shot registration of the checkpoint as it is, a self-contained model directory, and the
user's own architecture config."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dove_model.config import load_params, parse_params
from dove_model.data.prepare import prepare
from dove_model.errors import ConfigError
from dove_model.families.clip.tiny import TINY_CLIP, tiny_profile
from dove_model.families.dispatch import train
from dove_model.testing.smoke import write_smoke_project

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Path]:
    root = tmp_path_factory.mktemp("clip-family")
    profile = tiny_profile(root / "bring")
    with contextlib.chdir(root):
        params = load_params(write_smoke_project(root))
        dataset = prepare(params, progress=False).resolve()
    return root, profile, dataset


def _params(root: Path, profile: dict[str, Any], **model: Any) -> Any:
    profile = {**profile, "model": {**profile["model"], **model}}
    raw = {"train": {"profile": "c", "cache_dir": str(root / "cache"), "profiles": {"c": profile}}}
    return parse_params(raw)


def test_zero_shot_registers_the_checkpoint_as_it_is(
    project: tuple[Path, dict[str, Any], Path], tmp_path: Path
) -> None:
    root, profile, dataset = project
    result = train(dataset, _params(root, profile, zero_shot=True), tmp_path, progress=False)
    assert (result.stop_reason, result.epochs_run, result.best_epoch) == ("zero_shot", 0, 0)
    history = json.loads(result.history_file.read_text())
    assert [e["epoch"] for e in history["epochs"]] == [0] and history["family"] == "clip"
    assert not (tmp_path / "checkpoints").exists()  # nothing trained: nothing to resume
    assert result.best_metrics["mR"] >= 0


def test_the_model_directory_needs_neither_checkpoint_nor_architecture_file(
    project: tuple[Path, dict[str, Any], Path], tmp_path: Path
) -> None:
    """A fresh process where open_clip has never heard of the tiny architecture loads it
    from the directory's own copy of the config."""
    root, profile, dataset = project
    brought = tmp_path / "bring"
    shutil.copytree(root / "bring", brought)
    moved = {
        **profile["model"],
        "clip_checkpoint": str(brought / "tiny-clip" / f"{TINY_CLIP}.pt"),
        "clip_config": str(brought / "tiny-clip" / f"{TINY_CLIP}.json"),
    }
    params = _params(root, {**profile, "model": moved}, zero_shot=True)
    result = train(dataset, params, tmp_path / "out", progress=False)
    shutil.rmtree(brought)
    code = (
        "import sys; from dove_model.families.dispatch import load_encoder; "
        "e = load_encoder(sys.argv[1]); print(e.family, e.encode_texts(['a road']).t_g.shape)"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code, str(result.model_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout.split()[0] == "clip" and "(1, 32)" in shown.stdout


def test_an_architecture_config_must_exist_and_be_named_after_the_architecture(
    project: tuple[Path, dict[str, Any], Path], tmp_path: Path
) -> None:
    root, profile, dataset = project
    wrong = tmp_path / "my-arch.json"
    shutil.copy(profile["model"]["clip_config"], wrong)
    for config, message in (
        (wrong, f"call it {TINY_CLIP}-2.json"),
        (tmp_path / "no.json", "not found"),
    ):
        params = _params(root, profile, clip_config=str(config), clip_arch=f"{TINY_CLIP}-2")
        with pytest.raises(ConfigError, match=message):
            train(dataset, params, tmp_path / "out", progress=False)


def test_a_model_directory_without_its_architecture_config_is_named_as_incomplete(
    project: tuple[Path, dict[str, Any], Path], tmp_path: Path
) -> None:
    """Not the user's ``model.clip_config`` (a file the directory never needs): the directory
    itself lacks ``open_clip/<arch>.json``, for an architecture open_clip has never heard of
    (what a fresh process, e.g. a KFP task, meets)."""
    from dove_model.families.dispatch import load_encoder

    root, profile, dataset = project
    result = train(dataset, _params(root, profile, zero_shot=True), tmp_path, progress=False)
    unknown = "dove-test-never-registered"
    config_file = result.model_dir / "config.json"
    config = json.loads(config_file.read_text())
    config["model"]["clip_arch"] = unknown
    config_file.write_text(json.dumps(config))
    shutil.rmtree(result.model_dir / "open_clip")
    with pytest.raises(ConfigError, match=f"not a complete clip model directory .*{unknown}"):
        load_encoder(result.model_dir)


def test_a_clip_profile_names_its_architecture_and_checkpoint() -> None:
    profile = {"model": {"family": "clip", "clip_checkpoint": "remoteclip.pt"}}
    with pytest.raises(ConfigError, match=r"train.profiles.c.model: .*clip_arch"):
        parse_params({"train": {"profile": "c", "profiles": {"c": profile}}})
    repo = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    clip = [p for p in repo.train.profiles.values() if p.model.family == "clip"]
    assert clip and all(p.model.clip_arch for p in clip)
