"""Register, promote, roll back and load the champion through a real `mlflow server`.

The server listens on 127.0.0.1 (a free port) with a sqlite backend and a temporary
artifact destination; the model is a real one trained for one epoch on 48 synthetic images.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dove_model.config import Params
from dove_model.registry import (
    alias_state,
    detect_data_version,
    download_champion,
    promote,
    register,
    rollback,
)

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore")]


@pytest.fixture(scope="module")
def trained(smoke_trained: tuple[Path, Params]) -> tuple[Path, Params]:
    """A smoke project with a prepared dataset and a model trained for one epoch."""
    return smoke_trained


def _register(root: Path, params: Params, mr: float):
    metrics = root / f"metrics-{mr}.json"
    metrics.write_text(json.dumps({"split": "test", "mR": mr, "i2t_r1": mr / 2}))
    dataset = root / params.data.prepared_dir / params.data.name
    return register(
        root / params.train.out_dir / "model",
        metrics,
        params,
        detect_data_version(dataset, root=root),
        dataset_dir=dataset,
        validation_dir=None,
        root=root,
    )


def test_register_promote_rollback_and_load_through_a_server(
    trained: tuple[Path, Params], mlflow_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    import pandas as pd

    root, params = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)

    first = _register(root, params, 10.0)
    assert first.promoted and first.champion_version == "1"
    second = _register(root, params, 12.0)
    assert second.alias_changes == [
        "challenger: v1 -> v2",
        "previous-champion: (none) -> v1",
        "champion: v1 -> v2",
    ]
    assert [str(c) for c in rollback(params, root=root)] == [
        "champion: v2 -> v1",
        "previous-champion: v1 -> (removed)",
    ]
    assert [str(c) for c in promote(params, "2", root=root)] == [
        "previous-champion: (none) -> v1",
        "champion: v1 -> v2",
    ]
    assert alias_state(params, root=root) == {
        "champion": "2",
        "previous-champion": "1",
        "challenger": "2",
    }
    assert not (root / "mlruns" / "mlflow.db").exists(), "a server URI must not use sqlite"

    # The artifacts went through the server, and the champion loads as a working pyfunc.
    model_dir = download_champion(params, root / "downloaded")
    original = root / params.train.out_dir / "model" / "model.safetensors"
    assert (model_dir / "model.safetensors").read_bytes() == original.read_bytes()
    model = mlflow.pyfunc.load_model(f"models:/{params.register_.model_name}@champion")
    texts = ["a river in the forest", "planes at the airport"]
    embeddings = model.predict(pd.DataFrame({"text": texts}))
    assert len(embeddings) == 2
    vector = embeddings["embedding"].iloc[0]
    assert abs(float((vector**2).sum()) - 1.0) < 1e-4  # L2-normalised
    images = sorted((root / params.data.prepared_dir / params.data.name).rglob("*.jpg"))[:4]
    encoded = [base64.b64encode(p.read_bytes()).decode() for p in images]
    frame = pd.DataFrame({"text": [texts[0]] + [None] * 4, "image": [None, *encoded]})
    ranked = model.predict(frame, params={"task": "search", "top_k": 3})
    assert len(ranked) == 1
    assert len(ranked["ranking"].iloc[0]) == 3
    assert set(ranked["ranking"].iloc[0]) <= {1, 2, 3, 4}
    scores = ranked["scores"].iloc[0]
    assert scores == sorted(scores, reverse=True)


# Two "hosts" promoting at once: separate processes, separate project roots (so no local
# file is shared between them), one tracking server. Each promotes its own versions in turn.
_RACER = r"""
import json, sys, time
from pathlib import Path
from dove_model.config import parse_params
from dove_model.registry import promote

root, name, start, versions = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4:]
params = parse_params({"register": {"model_name": name}})
time.sleep(max(0.0, start - time.time()))
changes = [[str(c) for c in promote(params, v, root=root)] for v in versions]
print("RESULT " + json.dumps(changes))
"""


def _race_versions(server: str, name: str, count: int) -> list[str]:
    """``count`` versions of ``name`` whose recall gate passed, version 1 already champion."""
    from mlflow import MlflowClient

    client = MlflowClient(server, server)
    client.create_registered_model(name)
    run = client.create_run(client.create_experiment(name))  # the runs the versions point at
    versions = []
    for _ in range(count):
        source = f"{run.info.artifact_uri}/model"
        version = client.create_model_version(name, source, run_id=run.info.run_id)
        client.set_model_version_tag(name, version.version, "gate", "passed")
        versions.append(str(version.version))
    client.set_registered_model_alias(name, "champion", versions[0])
    return versions


def test_promotions_racing_from_two_hosts_lose_no_version(
    mlflow_server: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    name, per_host = "race-model", 12
    versions = _race_versions(mlflow_server, name, 1 + 2 * per_host)
    hosts = {"host-a": versions[1::2], "host-b": versions[2::2]}
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MLFLOW_TRACKING_URI"] = mlflow_server
    start = time.time() + 8.0  # both processes have imported MLflow by then
    processes = []
    for host, mine in hosts.items():
        (tmp_path / host).mkdir()
        command = [sys.executable, "-c", _RACER, str(tmp_path / host), name, str(start), *mine]
        processes.append(
            subprocess.Popen(
                command,
                cwd=tmp_path / host,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=600) for p in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-3000:]

    client = MlflowClient(mlflow_server, mlflow_server)
    model = client.get_registered_model(name)
    champion = model.aliases["champion"]
    # Walk the chain champion -> promoted_over -> ...: every promoted version, each once.
    chain, seen = [champion], {champion}
    while True:
        before = client.get_model_version(name, chain[-1]).tags.get("promoted_over", "none")
        if before == "none" or chain[-1] == versions[0]:
            break
        assert before not in seen, f"cycle in the chain {chain} -> {before}"
        chain.append(before)
        seen.add(before)
    assert sorted(chain, key=int) == sorted(versions, key=int), f"chain {chain} lost versions"
    assert model.aliases["previous-champion"] == chain[1]
    assert champion in {hosts["host-a"][-1], hosts["host-b"][-1]}
