"""Every family, trained for real on one dataset version, competes under one registry gate.

A DOVE model, a dual model and a clip checkpoint (zero-shot) train on the same smoke dataset,
are evaluated by the same function and registered under one registered model (sqlite MLflow),
weakest first: each stronger one, whatever its family, is gated against the champion and
promoted; the weakest registered again stays challenger. Each version carries its family, and
the dual champion loads as a working pyfunc.
"""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path

import pytest
import yaml

from dove_model.config import Params, load_params
from dove_model.evaluation.evaluate import evaluate
from dove_model.families.dispatch import train
from dove_model.families.registry import family_spec
from dove_model.registry import alias_state, detect_data_version, register
from dove_model.registry.promotion import alias_families
from dove_model.registry.register import FAMILY_TAG
from dove_model.testing.smoke import DUAL_SMOKE

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore")]


def _with_profile(root: Path, overrides: dict) -> Params:
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["train"]["profile"] = overrides["train"]["profile"]
    raw["train"]["profiles"] |= overrides["train"]["profiles"]
    raw["register"]["gates"] = {"min_metrics": {"mR": 0.0}, "max_regression": 0.0}
    path = root / "params-dual.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_params(path)


@pytest.fixture(scope="module")
def families(smoke_trained: tuple[Path, Params]) -> dict:
    """{family: (model_dir, metrics_file, mR)} on one dataset, and the shared params."""
    root, params = smoke_trained
    dual_params = _with_profile(root, DUAL_SMOKE)
    clip_profile = family_spec("clip").tiny_profile(root / "bring")
    clip_profile["model"]["zero_shot"] = True
    clip_params = _with_profile(
        root, {"train": {"profile": "clip", "profiles": {"clip": clip_profile}}}
    )
    dataset = root / params.data.prepared_dir / params.data.name
    found = {}
    with contextlib.chdir(root):
        dual = train(dataset, dual_params, root / "train-dual", progress=False)
        clip = train(dataset, clip_params, root / "train-clip", progress=False)
        for family, model_dir in (
            ("dove", root / params.train.out_dir / "model"),
            ("dual", dual.model_dir),
            ("clip", clip.model_dir),
        ):
            out = root / f"metrics-{family}.json"
            report = evaluate(model_dir, dataset, dual_params, out, progress=False)
            found[family] = (model_dir, out, report["mR"])
    return {"root": root, "params": dual_params, "dataset": dataset, "models": found}


def _register(families: dict, family: str):
    model_dir, metrics, _ = families["models"][family]
    root = families["root"]
    return register(
        model_dir,
        metrics,
        families["params"],
        detect_data_version(families["dataset"], root=root),
        dataset_dir=families["dataset"],
        root=root,
    )


def test_the_better_family_takes_the_champion_from_the_other(
    families: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    models = families["models"]
    assert len({m[2] for m in models.values()}) == 3, "equal mR: the gate cannot tell them apart"
    weakest, middle, strongest = sorted(models, key=lambda family: models[family][2])
    params, root = families["params"], families["root"]
    for version, family in enumerate((weakest, middle, strongest), start=1):
        result = _register(families, family)
        assert result.promoted and result.champion_version == str(version), result.gate
    again = _register(families, weakest)
    assert not again.promoted and "regresses" in again.gate
    assert alias_state(params, root=root) == {
        "champion": "3",
        "previous-champion": "2",
        "challenger": "4",
    }
    assert alias_families(params, root=root) == {
        "champion": strongest,
        "previous-champion": middle,
        "challenger": weakest,
    }
    from mlflow import MlflowClient

    from dove_model.registry.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(params.register_, root=root)
    client = MlflowClient(uri, uri)
    name = params.register_.model_name
    assert client.get_model_version(name, "3").tags[FAMILY_TAG] == strongest


def test_a_registered_dual_model_loads_as_a_pyfunc(
    families: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import mlflow
    import pandas as pd

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    families = {**families, "root": tmp_path}  # a registry of its own
    result = _register(families, "dual")
    from dove_model.registry.tracking import resolve_tracking_uri

    mlflow.set_tracking_uri(resolve_tracking_uri(families["params"].register_, root=tmp_path))
    model = mlflow.pyfunc.load_model(result.model_uri)
    assert model.metadata.metadata == {"family": "dual"}
    embeddings = model.predict(pd.DataFrame({"text": ["a river in the forest"]}))
    vector = embeddings["embedding"].iloc[0]
    assert abs(float((vector**2).sum()) - 1.0) < 1e-4
    images = sorted(families["dataset"].rglob("*.jpg"))[:4]
    encoded = [base64.b64encode(p.read_bytes()).decode() for p in images]
    frame = pd.DataFrame({"text": ["planes", None, None, None, None], "image": [None, *encoded]})
    ranked = model.predict(frame, params={"task": "search", "top_k": 3})
    scores = ranked["scores"].iloc[0]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    with pytest.raises(Exception, match="dual model, not 'dove'"):
        model.predict(pd.DataFrame({"text": ["x"]}), params={"family": "dove"})


def test_a_champion_from_another_data_version_is_re_evaluated_across_families(
    families: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The gate re-evaluates the champion (of the other family) on the challenger's data and
    caches the result on the champion version."""
    from mlflow import MlflowClient

    from dove_model.registry import DataVersion
    from dove_model.registry.register import METRICS_TAG_PREFIX
    from dove_model.registry.tracking import resolve_tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    models, params = families["models"], families["params"]
    weaker, *_, stronger = sorted(models, key=lambda family: models[family][2])
    model_dir, metrics, _ = models[weaker]
    register(model_dir, metrics, params, DataVersion("older-data", None, "rev"), root=tmp_path)
    data_version = detect_data_version(families["dataset"], root=families["root"])
    model_dir, metrics, _ = models[stronger]
    result = register(
        model_dir, metrics, params, data_version, dataset_dir=families["dataset"], root=tmp_path
    )
    assert result.promoted, result.gate
    uri = resolve_tracking_uri(params.register_, root=tmp_path)
    tags = MlflowClient(uri, uri).get_model_version(params.register_.model_name, "1").tags
    cached = json.loads(tags[METRICS_TAG_PREFIX + data_version.tag])
    assert cached["mR"] == pytest.approx(models[weaker][2])  # the same evaluation function
