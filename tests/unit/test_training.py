"""Training on a tiny synthetic dataset: outputs, exact resume, cache keys, failure modes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from dove_model.config import DataParams, Params, SynthParams, parse_params
from dove_model.data.manifest import load_split
from dove_model.data.prepare import prepare
from dove_model.errors import ConfigError
from dove_model.evaluation.evaluate import evaluate
from dove_model.families.dispatch import train
from dove_model.families.dove.inference import DoveEncoder
from dove_model.families.dove.spec import TINY_PROFILE
from dove_model.model.directory import WEIGHTS_FILE
from dove_model.model.preprocess import preprocessing_for
from dove_model.training.run import TrainingDiverged

TINY_MODEL = TINY_PROFILE["model"]  # the family's tiny model: a random resnet18


def tiny_params(tmp: Path, **profile: Any) -> Params:
    demo = {
        "epochs": 2,
        "batch_size": 16,
        "lr": 1e-3,
        "resize": 72,
        "crop": 64,
        "eval_size": 64,
        "amp": False,
        "max_minutes": None,
        "model": TINY_MODEL,
        **profile,
    }
    return parse_params(
        {
            "train": {
                "profile": "demo",
                "cache_dir": str(tmp / "cache"),
                "device": "cpu",
                "profiles": {"demo": demo},
            },
            "evaluate": {"two_stage_k": 5, "chunk_size": 16},
        }
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    synth = SynthParams(n_images=24, image_size=64, val_fraction=0.25, test_fraction=0.25)
    data = DataParams(path=str(root / "synth"), prepared_dir=str(root / "prepared"), synth=synth)
    return prepare(Params(data=data), progress=False)


@pytest.fixture(scope="module")
def trained(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run")
    return out, train(dataset, tiny_params(out), out, progress=False)


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "checkpoints" / "last" / "weights.safetensors"))


def test_outputs_follow_the_contract(trained: tuple[Path, Any], dataset: Path) -> None:
    out, result = trained
    assert result.epochs_run == 2 and result.stop_reason == "epochs"
    assert {p.name for p in result.model_dir.iterdir()} == {
        "model.safetensors",
        "config.json",
        "vocab.json",
    }
    history = json.loads(result.history_file.read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]
    assert all(e["loss"] > 0 and 0 <= e["val"]["mR"] <= 100 for e in history["epochs"])
    assert history["best_epoch"] == result.best_epoch
    assert result.train_samples_per_s > 0
    metrics = evaluate(
        result.model_dir, dataset, tiny_params(out), out / "metrics.json", progress=False
    )
    saved = json.loads((out / "metrics.json").read_text())
    for key in (
        "split",
        "n_images",
        "n_captions",
        "i2t_r1",
        "i2t_r5",
        "i2t_r10",
        "t2i_r1",
        "t2i_r5",
        "t2i_r10",
        "mR",
        "two_stage",
        "two_stage_mR_gap",
        "random_chance_mR",
        "tie_averaged",
    ):
        assert key in saved
    assert saved["split"] == "test" and saved["n_captions"] == 5 * saved["n_images"]
    assert saved["two_stage"]["k"] == 5
    assert metrics["two_stage_mR_gap"] == pytest.approx(metrics["mR"] - metrics["two_stage"]["mR"])
    assert DoveEncoder.from_dir(result.model_dir).fingerprint == saved["model_fingerprint"]


def test_resume_after_a_stop_gives_the_same_weights(
    trained: tuple[Path, Any], dataset: Path, tmp_path: Path
) -> None:
    out, _ = trained
    train(dataset, tiny_params(tmp_path, epochs=1), tmp_path, progress=False)  # "killed"
    resumed = train(dataset, tiny_params(tmp_path, epochs=2), tmp_path, progress=False)
    assert resumed.epochs_run == 2
    want, got = weights(out), weights(tmp_path)
    assert all(torch.equal(want[k], got[k]) for k in want)
    history = json.loads((tmp_path / "history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]


def test_feature_cache_is_reused_and_keyed(dataset: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    train(dataset, tiny_params(tmp_path, epochs=1), tmp_path / "a", progress=False)
    entries = sorted(cache.glob("*.safetensors"))
    assert len(entries) == 2  # train + val
    stamps = [p.stat().st_mtime_ns for p in entries]
    train(dataset, tiny_params(tmp_path, epochs=1), tmp_path / "b", progress=False)
    assert [p.stat().st_mtime_ns for p in sorted(cache.glob("*.safetensors"))] == stamps
    # another image size -> other keys, never the stale entries
    train(dataset, tiny_params(tmp_path, epochs=1, eval_size=72), tmp_path / "c", progress=False)
    assert len(list(cache.glob("*.safetensors"))) == 4


def test_raw_image_training_without_cache(dataset: Path, tmp_path: Path) -> None:
    model = {**TINY_MODEL, "freeze_backbone": False}
    result = train(dataset, tiny_params(tmp_path, epochs=1, model=model), tmp_path, progress=False)
    assert result.epochs_run == 1 and not (tmp_path / "cache").exists()


def test_channels_last_trains_the_same_model(dataset: Path, tmp_path: Path) -> None:
    model = {**TINY_MODEL, "freeze_backbone": False}
    results = {}
    for layout in (False, True):
        out = tmp_path / f"channels_last_{layout}"
        params = tiny_params(out, epochs=1, model=model, channels_last=layout)
        results[layout] = train(dataset, params, out, progress=False)
    losses = [json.loads(results[k].history_file.read_text()) for k in (False, True)]
    first, second = (h["epochs"][0]["loss"] for h in losses)
    assert second == pytest.approx(first, rel=1e-4)
    default, nhwc = (load_file(str(results[k].model_dir / WEIGHTS_FILE)) for k in (False, True))
    assert default.keys() == nhwc.keys()
    # the same arithmetic in another order: Adam turns the rare gradient near zero that rounds
    # the other way into a step of up to lr (1e-3), so count the outliers and bound them loosely
    close = [torch.isclose(nhwc[k], v, rtol=1e-3, atol=1e-4) for k, v in default.items()]
    assert sum(int(c.sum()) for c in close) / sum(c.numel() for c in close) > 0.999
    assert max(float((nhwc[k] - v).abs().max()) for k, v in default.items()) < 1e-2


def test_checkpoint_of_another_config_is_refused(trained: tuple[Path, Any], dataset: Path) -> None:
    out, _ = trained
    other = tiny_params(out, epochs=3, model={**TINY_MODEL, "embed_dim": 16})
    with pytest.raises(ConfigError, match=r"model\.embed_dim=32.*16"):
        train(dataset, other, out, progress=False)


def test_a_checkpoint_older_than_a_model_field_resumes_with_its_default(
    trained: tuple[Path, Any], dataset: Path, tmp_path: Path
) -> None:
    """Upgrading must not strand a half-trained run: a field added since the checkpoint was
    written (here ``tta_rotations``) reads as its default; a real difference still refuses."""
    train(dataset, tiny_params(tmp_path, epochs=1), tmp_path, progress=False)
    meta_file = tmp_path / "checkpoints" / "last" / "meta.json"
    meta = json.loads(meta_file.read_text())
    del meta["model"]["tta_rotations"]
    meta_file.write_text(json.dumps(meta))
    resumed = train(dataset, tiny_params(tmp_path, epochs=2), tmp_path, progress=False)
    assert resumed.epochs_run == 2
    meta["model"]["tta_rotations"] = 4
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match=r"model\.tta_rotations=4"):
        train(dataset, tiny_params(tmp_path, epochs=3), tmp_path, progress=False)


def test_nan_loss_stops_with_a_clear_error(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingDiverged, match=r"loss became (nan|inf) at epoch 1, step 2.*lr"):
        train(dataset, tiny_params(tmp_path, lr=1e30), tmp_path, progress=False)
    assert not (tmp_path / "model").exists()


def test_early_stopping_and_time_budget(dataset: Path, tmp_path: Path) -> None:
    stuck = tiny_params(tmp_path, epochs=5, lr=0.0, early_stopping_patience=1)
    result = train(dataset, stuck, tmp_path / "a", progress=False)
    assert result.stop_reason == "early_stopping" and result.epochs_run == 2
    budget = tiny_params(tmp_path, epochs=5, max_minutes=1e-6)
    result = train(dataset, budget, tmp_path / "b", progress=False)
    assert result.stop_reason == "time_budget" and result.epochs_run == 1
    assert (result.model_dir / "model.safetensors").is_file()


def test_the_model_directory_records_the_backbones_preprocessing(
    trained: tuple[Path, Any],
) -> None:
    _, result = trained
    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["preprocess"] == preprocessing_for(TINY_MODEL["backbone"]).to_json()
    assert DoveEncoder.from_dir(result.model_dir).preprocess == preprocessing_for("resnet18")


def test_select_on_one_split_and_report_another(trained: tuple[Path, Any], dataset: Path) -> None:
    """train.val_split picks the epoch; evaluate reports any other split of the dataset."""
    out, result = trained
    history = json.loads(result.history_file.read_text())
    val = load_split(dataset, "val")
    best = next(e for e in history["epochs"] if e["epoch"] == result.best_epoch)
    assert best["val"]["mR"] == max(e["val"]["mR"] for e in history["epochs"])
    report = evaluate(
        result.model_dir,
        dataset,
        tiny_params(out),
        out / "test.json",
        split="test",
        progress=False,
    )
    on_val = evaluate(
        result.model_dir,
        dataset,
        tiny_params(out),
        out / "val.json",
        split="val",
        progress=False,
    )
    assert report["split"] == "test" and on_val["split"] == "val"
    assert on_val["n_images"] == val.n_images
    assert report["n_images"] == load_split(dataset, "test").n_images


def test_a_checkpoint_with_another_optimiser_layout_is_refused_clearly(
    trained: tuple[Path, Any], dataset: Path, tmp_path: Path
) -> None:
    """A checkpoint from before the per-step schedule (StepLR state) asks for --fresh."""
    out, _ = trained
    run = tmp_path / "old"
    shutil.copytree(out / "checkpoints", run / "checkpoints")
    trainer = run / "checkpoints" / "last" / "trainer.pt"
    state = torch.load(trainer, weights_only=True)
    state["scheduler"] = {"step_size": 3, "gamma": 0.7, "base_lrs": [1e-3], "last_epoch": 2}
    torch.save(state, trainer)
    with pytest.raises(ConfigError, match="start over with --fresh"):
        train(dataset, tiny_params(out, epochs=3), run, progress=False)
