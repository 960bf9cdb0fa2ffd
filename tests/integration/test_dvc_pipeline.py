"""`dvc repro` runs prepare -> validate -> train -> evaluate -> register -> deploy for real,
from a fresh clone: the files git tracks in this working tree, committed in a new repository,
with no data/, no dvc.lock and no DVC cache (the `dove` commands run from this venv).

The pipeline runs on the smoke parameters (48 synthetic 64 px images, one epoch); the data
stages also run on the committed params.yaml, whose rendered default is what data.dvc records.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dove_model.config import load_params
from dove_model.testing.orchestrators import commit_all, dvc, fresh_clone
from dove_model.testing.smoke import DUAL_SMOKE, write_smoke_project

REPO_ROOT = Path(__file__).resolve().parents[2]
STAGES = ("prepare", "validate", "train", "evaluate", "register", "deploy")

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore")]


def _assert_fresh(clone: Path) -> None:
    for absent in ("data", "dvc.lock", ".dvc/cache", "artifacts", "mlruns"):
        assert not (clone / absent).exists(), absent
    assert (clone / "data.dvc").is_file()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh clone with the smoke parameters committed."""
    root = fresh_clone(REPO_ROOT, tmp_path_factory.mktemp("dvc-project"))
    _assert_fresh(root)
    write_smoke_project(root)
    commit_all(root, "smoke params")
    return root


@pytest.fixture(scope="module")
def first_repro(project: Path) -> str:
    return dvc(project, "repro")


def test_repro_runs_every_stage_and_registers_a_champion(project: Path, first_repro: str) -> None:
    from dove_model.registry import alias_state

    for stage in STAGES:
        assert f"Running stage '{stage}'" in first_repro
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    assert set(STAGES) <= set(lock)
    metrics = json.loads((project / "metrics.json").read_text())
    assert 0.0 <= metrics["mR"] <= 100.0
    registration = json.loads((project / "reports/registration.json").read_text())
    assert registration["version"] == "1" and registration["promoted"]
    for plot in ("training_curves.png", "recall_bars.png"):
        assert (project / "reports/plots" / plot).read_bytes().startswith(b"\x89PNG")
    params = load_params(project / "params.yaml")
    assert alias_state(params, root=project)["champion"] == "1"
    assert any((project / params.index.out_dir).iterdir())
    shown = dvc(project, "metrics", "show", "--json")
    assert '"mR"' in shown


def test_second_repro_does_nothing(project: Path, first_repro: str) -> None:
    output = dvc(project, "repro")
    assert "Running stage" not in output
    assert "up to date" in output


def test_exp_run_with_set_param_reruns_only_what_changed(project: Path, first_repro: str) -> None:
    from dove_model.registry import alias_state

    commit_all(project, "first repro")
    output = dvc(
        project,
        "exp",
        "run",
        "--set-param",
        "index.hnsw_ef_search=32",
    )
    assert "Running stage 'deploy'" in output
    for stage in ("prepare", "validate", "train", "evaluate", "register"):
        assert f"Running stage '{stage}'" not in output
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["index"]["hnsw_ef_search"] == 32
    state = alias_state(load_params(project / "params.yaml"), root=project)
    assert state == {"champion": "1", "previous-champion": None, "challenger": "1"}


def test_a_fresh_clone_renders_the_committed_data_version(tmp_path: Path) -> None:
    """The committed params.yaml: prepare renders the default into data/ and the result is
    the very data version data.dvc records (DVC finds it in the workspace, not modified)."""
    clone = fresh_clone(REPO_ROOT, tmp_path / "clone")
    _assert_fresh(clone)
    output = dvc(clone, "repro", "validate")
    assert "Running stage 'prepare'" in output and "Running stage 'validate'" in output
    status = json.loads(dvc(clone, "status", "data.dvc", "--json"))
    assert status in ({}, {"data.dvc": [{"changed outs": {"data": "not in cache"}}]})


def test_switching_the_profile_to_the_dual_family_retrains_and_redeploys(
    project: Path, first_repro: str
) -> None:
    """params.yaml alone picks the family: the same `dvc repro` trains, gates, registers and
    deploys a dual model next to the DOVE champion."""
    from mlflow import MlflowClient

    from dove_model.registry.register import FAMILY_TAG
    from dove_model.registry.tracking import resolve_tracking_uri

    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["train"]["profile"] = DUAL_SMOKE["train"]["profile"]
    raw["train"]["profiles"] |= DUAL_SMOKE["train"]["profiles"]
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    output = dvc(project, "repro")
    for stage in ("train", "evaluate", "register", "deploy"):
        assert f"Running stage '{stage}'" in output
    config = json.loads((project / "artifacts/train/model/config.json").read_text())
    assert config["family"] == "dual"
    registration = json.loads((project / "reports/registration.json").read_text())
    params = load_params(project / "params.yaml")
    uri = resolve_tracking_uri(params.register_, root=project, environ={})
    version = MlflowClient(uri, uri).get_model_version(
        params.register_.model_name, registration["version"]
    )
    assert version.tags[FAMILY_TAG] == "dual"
    assert registration["promoted"]  # the smoke gates let any model through
    assert any((project / params.index.out_dir).iterdir())


def test_switching_to_a_zero_shot_clip_checkpoint_registers_and_deploys_it(
    project: Path, first_repro: str
) -> None:
    """The third family from params.yaml alone: a checkpoint the user brings (a tiny random
    open_clip model here) goes through the same stages, gated against the champion."""
    from mlflow import MlflowClient

    from dove_model.families.registry import family_spec
    from dove_model.registry.register import FAMILY_TAG
    from dove_model.registry.tracking import resolve_tracking_uri

    profile = family_spec("clip").tiny_profile(project / "models")
    profile["model"]["zero_shot"] = True
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["train"]["profile"] = "remoteclip-tiny"
    raw["train"]["profiles"]["remoteclip-tiny"] = profile
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    output = dvc(project, "repro")
    for stage in ("train", "evaluate", "register", "deploy"):
        assert f"Running stage '{stage}'" in output
    history = json.loads((project / "artifacts/train/history.json").read_text())
    assert history["family"] == "clip" and [e["epoch"] for e in history["epochs"]] == [0]
    registration = json.loads((project / "reports/registration.json").read_text())
    params = load_params(project / "params.yaml")
    uri = resolve_tracking_uri(params.register_, root=project, environ={})
    version = MlflowClient(uri, uri).get_model_version(
        params.register_.model_name, registration["version"]
    )
    assert version.tags[FAMILY_TAG] == "clip"
