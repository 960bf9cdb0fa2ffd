"""The contract every registered family passes, at tiny size: train, save, load, evaluate,
index and search, resume, the time budget, early stopping, the MLflow pyfunc, register and
gate. A family gets this whole suite by its line in ``families/registry.py``: the tiny
profile it trains comes from its own spec (``FamilySpec.tiny_profile``). The service side of
the contract is tests/integration/test_service.py, parametrized by family the same way."""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dove_model.config import Params, load_params, parse_params
from dove_model.data.prepare import prepare
from dove_model.errors import ConfigError
from dove_model.evaluation.evaluate import evaluate
from dove_model.families.dispatch import check_model_dir, load_encoder, spec_of_dir, train
from dove_model.families.registry import family_names, family_spec
from dove_model.index import load_archive
from dove_model.index.build import build_index
from dove_model.index.vectors import search
from dove_model.model.directory import model_family
from dove_model.registry import DataVersion, register
from dove_model.testing.smoke import write_smoke_project
from dove_model.training.run import TrainResult

pytestmark = pytest.mark.filterwarnings("ignore")
QUERY = ["a runway next to green fields"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic smoke dataset, prepared once."""
    root = tmp_path_factory.mktemp("contract-data")
    params_file = write_smoke_project(root)
    with contextlib.chdir(root):
        params = load_params(params_file)
        prepare(params, progress=False)
    return root / params.data.prepared_dir / params.data.name


def family_params(family: str, folder: Path, **profile: Any) -> Params:
    """The family's tiny profile (with ``profile`` overrides) as the active one."""
    tiny = {**family_spec(family).tiny_profile(folder), **profile}
    return parse_params(
        {
            "train": {
                "profile": family,
                "device": "cpu",
                "cache_dir": str(folder / "cache"),
                "profiles": {family: tiny},
            },
            "evaluate": {"two_stage_k": 5, "chunk_size": 16},
            "index": {"batch_size": 16},
            "register": {"gates": {"min_metrics": {"mR": 0.0}, "max_regression": 1.0}},
        }
    )


@dataclass(frozen=True)
class Trained:
    family: str
    folder: Path
    params: Params
    result: TrainResult


@pytest.fixture(scope="module", params=family_names())
def trained(
    request: pytest.FixtureRequest, dataset: Path, tmp_path_factory: pytest.TempPathFactory
) -> Trained:
    family = request.param
    folder = tmp_path_factory.mktemp(f"contract-{family}")
    params = family_params(family, folder)
    result = train(dataset, params, folder / "out", progress=False)
    return Trained(family, folder, params, result)


def checkpoint_weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "checkpoints" / "last" / "weights.safetensors"))


def test_every_family_is_registered_with_a_complete_spec() -> None:
    for name in family_names():
        spec = family_spec(name)
        assert spec.name == name and spec.settings.model_fields["family"].default == name
        assert spec.required_files and spec.summary


def test_trains_and_writes_its_model_directory(trained: Trained) -> None:
    result, spec = trained.result, family_spec(trained.family)
    assert result.stop_reason == "epochs" and result.epochs_run == 2
    assert all((result.model_dir / f).is_file() for f in spec.required_files)
    assert model_family(result.model_dir) == trained.family
    history = json.loads(result.history_file.read_text())
    assert history["family"] == trained.family
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]
    best = max(e["val"]["mR"] for e in history["epochs"])
    assert result.best_metrics["mR"] == best and result.random_chance_mR > 0


def test_the_model_directory_loads_strictly_and_is_checked(
    trained: Trained, tmp_path: Path
) -> None:
    model_dir = trained.result.model_dir
    spec = spec_of_dir(model_dir)
    assert spec.name == trained.family
    model = spec.load_model(model_dir)
    saved = load_file(str(model_dir / "model.safetensors"))
    state = model.state_dict()
    assert set(state) == set(saved)
    assert all(torch.equal(state[k].cpu(), saved[k]) for k in saved)
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / [f for f in spec.required_files if f != "config.json"][-1]).unlink()
    with pytest.raises(ConfigError, match=f"not a {spec.title} model directory"):
        check_model_dir(broken)


def test_evaluates_with_every_recall(trained: Trained, dataset: Path) -> None:
    out = trained.folder / "metrics.json"
    report = evaluate(trained.result.model_dir, dataset, trained.params, out, progress=False)
    for key in ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "mR"):
        assert 0.0 <= report[key] <= 100.0
    assert json.loads(out.read_text())["mR"] == report["mR"]


def test_indexes_an_archive_and_finds_images_for_a_caption(trained: Trained, dataset: Path) -> None:
    folder = build_index(
        trained.result.model_dir, dataset, trained.params, trained.folder / "index", progress=False
    )
    archive = load_archive(folder, trained.params.index)
    assert archive.family == trained.family and archive.n_images > 0
    encoder = load_encoder(trained.result.model_dir)
    assert encoder.family == trained.family
    texts = encoder.encode_texts(QUERY)
    scores, rows = search(archive.image_index, np.ascontiguousarray(texts.t_g, np.float32), 5)
    assert rows.shape == (1, 5) and (rows >= 0).all() and np.all(np.diff(scores[0]) <= 1e-6)


class Killed(Exception):
    """Stands for the process dying right after an epoch's checkpoint."""


def kill_after_epoch_1(record: dict[str, Any]) -> None:
    if record["epoch"] == 1:
        raise Killed


def test_resume_after_a_kill_gives_the_same_weights(
    trained: Trained, dataset: Path, tmp_path: Path
) -> None:
    params = family_params(trained.family, tmp_path)
    with pytest.raises(Killed):
        train(dataset, params, tmp_path / "o", progress=False, on_epoch_end=kill_after_epoch_1)
    resumed = train(dataset, params, tmp_path / "o", progress=False)
    assert resumed.epochs_run == 2
    want, got = checkpoint_weights(trained.folder / "out"), checkpoint_weights(tmp_path / "o")
    assert set(want) == set(got) and all(torch.equal(want[k], got[k]) for k in want)
    history = json.loads((tmp_path / "o" / "history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]
    fresh = train(dataset, params, tmp_path / "o", resume=False, progress=False)
    assert fresh.epochs_run == 2  # --fresh: starts over, same result
    assert checkpoint_weights(tmp_path / "o").keys() == want.keys()


def test_a_checkpoint_of_other_settings_is_refused(trained: Trained, dataset: Path) -> None:
    settings = trained.params.model_for_training().model_dump()
    changed = {k: v for k, v in settings.items() if k != "family"}
    field = next(k for k, v in changed.items() if isinstance(v, int) and not isinstance(v, bool))
    other = family_params(
        trained.family,
        trained.folder,
        epochs=3,
        model={**trained.params.train.active.model.model_dump(), field: changed[field] + 1},
    )
    with pytest.raises(ConfigError, match=f"trained with model.{field}="):
        train(dataset, other, trained.folder / "out", progress=False)


def test_early_stopping_and_the_time_budget(
    trained: Trained, dataset: Path, tmp_path: Path
) -> None:
    family = trained.family
    stuck = family_params(family, tmp_path, epochs=5, lr=0.0, early_stopping_patience=1)
    result = train(dataset, stuck, tmp_path / "a", progress=False)
    assert (result.stop_reason, result.epochs_run) == ("early_stopping", 2)
    budget = family_params(family, tmp_path, epochs=5, max_minutes=1e-6)
    result = train(dataset, budget, tmp_path / "b", progress=False)
    assert (result.stop_reason, result.epochs_run) == ("time_budget", 1)
    assert (result.model_dir / "model.safetensors").is_file()


def test_registers_as_a_pyfunc_that_names_its_family_and_is_gated(
    trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    import pandas as pd

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = trained.folder / "registry"
    root.mkdir(exist_ok=True)
    version = DataVersion("v1", None, "rev")

    def register_with(mr: float) -> Any:
        metrics = root / f"metrics-{mr}.json"
        metrics.write_text(json.dumps({"split": "test", "mR": mr}))
        return register(trained.result.model_dir, metrics, trained.params, version, root=root)

    first = register_with(20.0)
    assert first.promoted
    worse = register_with(10.0)
    assert not worse.promoted and "regresses" in worse.gate
    model = mlflow.pyfunc.load_model(first.model_uri)
    assert model.metadata.metadata == {"family": trained.family}
    frame = pd.DataFrame({"text": QUERY})
    vectors = model.predict(frame, params={"task": "encode_text", "family": trained.family})
    assert len(vectors) == 1
    with pytest.raises(Exception, match=f"this is a {trained.family} model"):
        wrong = next(n for n in family_names() if n != trained.family)
        model.predict(frame, params={"task": "encode_text", "family": wrong})
