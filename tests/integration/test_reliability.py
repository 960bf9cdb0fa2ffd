"""Reliability: the pipeline fails safe.

- a critical data-gate failure stops the pipeline before training; nothing is registered;
- a model worse than the champion is registered as challenger and never becomes champion;
- training killed mid-run resumes from its last checkpoint;
- two runs registering at once on one sqlite store keep the registry consistent.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dove_model.config import Params, load_params
from dove_model.errors import GateFailed
from dove_model.registry import DataVersion, alias_state, register
from dove_model.registry.tracking import resolve_tracking_uri
from dove_model.testing.smoke import write_smoke_project

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore")]

DOVE = str(Path(sys.executable).with_name("dove"))


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return env | extra


@pytest.fixture(scope="module")
def trained(smoke_trained: tuple[Path, Params]) -> tuple[Path, Params]:
    """A smoke project with a prepared dataset and a model trained for one epoch."""
    return smoke_trained


def _metrics(root: Path, name: str, mr: float) -> Path:
    path = root / f"{name}.json"
    path.write_text(json.dumps({"split": "test", "mR": mr, "i2t_r1": mr / 2}))
    return path


def test_critical_data_gate_failure_stops_the_pipeline(tmp_path: Path) -> None:
    from dove_model.data.prepare import ensure_synth

    params = load_params(write_smoke_project(tmp_path))
    with contextlib.chdir(tmp_path):
        synth = tmp_path / ensure_synth(params.data, progress=False)
    broken = sorted((synth / "images").iterdir())[0]
    assert broken.is_relative_to(tmp_path)
    broken.write_bytes(b"not an image at all")

    done = subprocess.run(
        [DOVE, "pipeline", "run", "--local"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    # the validate task's GateFailed, re-raised with its class: exit code 1, not 2
    assert done.returncode == GateFailed.exit_code, done.stdout[-3000:] + done.stderr[-3000:]
    assert "error: validate: " in done.stderr and "critical data expectation" in done.stderr
    runs = list((tmp_path / params.pipeline.local_root).iterdir())
    assert len(runs) == 1
    assert {p.name for p in runs[0].iterdir()} <= {"prepare", "validate"}  # no train
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()  # nothing registered


def test_a_worse_model_stays_challenger(trained: tuple[Path, Params], tmp_path: Path) -> None:
    root, params = trained
    model_dir = root / params.train.out_dir / "model"
    gated = Params.model_validate(
        params.model_dump(by_alias=True)
        | {"register": {"gates": {"min_metrics": {"mR": 5.0}, "max_regression": 1.0}}}
    )
    version = DataVersion("same-data", None, "rev")
    good = register(model_dir, _metrics(tmp_path, "good", 20.0), gated, version, root=tmp_path)
    worse = register(model_dir, _metrics(tmp_path, "worse", 18.5), gated, version, root=tmp_path)
    assert good.promoted and not worse.promoted
    assert "regresses 1.50 points" in worse.gate
    assert alias_state(gated, root=tmp_path) == {
        "champion": good.version,
        "previous-champion": None,
        "challenger": worse.version,
    }


TRAIN_SCRIPT = """
import sys, torch
from pathlib import Path
from dove_model.config import load_params
from dove_model.families.dispatch import train
torch.set_num_threads(1)
params = load_params(sys.argv[1])
train(Path(sys.argv[2]), params, Path(sys.argv[3]), progress=False)
"""


def _completed_epochs(out_dir: Path) -> int:
    import torch

    state = torch.load(out_dir / "checkpoints/last/trainer.pt", weights_only=True)
    return int(state["loop"]["epoch"])


def test_killed_training_resumes_from_the_last_checkpoint(
    trained: tuple[Path, Params], tmp_path: Path
) -> None:
    from dove_model.families.dispatch import train

    root, params = trained
    dataset = root / params.data.prepared_dir / params.data.name
    long_run = {"train": {"profiles": {"smoke": {"epochs": 500, "early_stopping_patience": 999}}}}
    params_file = write_smoke_project(tmp_path, long_run)
    out_dir = tmp_path / "train"
    process = subprocess.Popen(
        [sys.executable, "-c", TRAIN_SCRIPT, str(params_file), str(dataset), str(out_dir)],
        cwd=root,
        env=_env(),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not (out_dir / "checkpoints/last/meta.json").is_file():
            assert process.poll() is None, "training ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
    assert process.returncode == -signal.SIGKILL
    done = _completed_epochs(out_dir)
    assert 1 <= done < 500

    seen: list[int] = []
    resume_params = load_params(
        write_smoke_project(
            tmp_path,
            {
                "train": {
                    "profiles": {"smoke": {"epochs": done + 1, "early_stopping_patience": 999}}
                }
            },
        )
    )
    with contextlib.chdir(root):
        result = train(
            dataset,
            resume_params,
            out_dir,
            progress=False,
            on_epoch_end=lambda record: seen.append(int(record["epoch"])),
        )
    assert seen == [done + 1]  # only the missing epoch ran
    history = json.loads(result.history_file.read_text())
    assert [e["epoch"] for e in history["epochs"]] == list(range(1, done + 2))
    assert (out_dir / "model" / "model.safetensors").is_file()


REGISTER_SCRIPT = """
import json, sys
from pathlib import Path
from dove_model.config import load_params
from dove_model.registry import DataVersion, register
params = load_params(sys.argv[1])
root, model_dir = Path(sys.argv[2]), Path(sys.argv[3])
results = []
for metrics in sys.argv[4:]:
    r = register(model_dir, Path(metrics), params, DataVersion("same", None, "rev"), root=root)
    results.append({"version": r.version, "promoted": r.promoted, "run_id": r.run_id})
print("RESULT " + json.dumps(results))
"""


def test_two_concurrent_runs_keep_the_registry_consistent(
    trained: tuple[Path, Params], tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    root, params = trained
    gates = {"register": {"gates": {"min_metrics": {"mR": 5.0}, "max_regression": 1.0}}}
    params_file = write_smoke_project(tmp_path, gates)
    model_dir = root / params.train.out_dir / "model"
    runs = {
        "a": [_metrics(tmp_path, "a1", 10.0), _metrics(tmp_path, "a2", 14.0)],
        "b": [_metrics(tmp_path, "b1", 12.0), _metrics(tmp_path, "b2", 2.0)],
    }
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", REGISTER_SCRIPT, str(params_file), str(tmp_path)]
            + [str(model_dir)]
            + [str(m) for m in metrics],
            cwd=tmp_path,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for metrics in runs.values()
    ]
    outputs = [p.communicate(timeout=600) for p in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-3000:]
    results = [
        item
        for out, _ in outputs
        for line in out.splitlines()
        if line.startswith("RESULT ")
        for item in json.loads(line.removeprefix("RESULT "))
    ]
    assert sorted(int(r["version"]) for r in results) == [1, 2, 3, 4]
    assert len({r["run_id"] for r in results}) == 4

    gated = load_params(params_file)
    uri = resolve_tracking_uri(gated.register_, root=tmp_path, environ={})
    client = MlflowClient(uri, uri)
    name = gated.register_.model_name
    versions = {str(v.version): v for v in client.search_model_versions(f"name = '{name}'")}
    assert set(versions) == {"1", "2", "3", "4"}
    state = alias_state(gated, root=tmp_path)
    assert state["challenger"] == "4"
    champion = versions[state["champion"]]
    assert champion.tags["gate"] == "passed"
    # mR 2.0 can never pass; 14.0 is the best and passes whenever it was registered.
    # mR 14.0 is the best and passes whenever it lands, so it ends as champion; 2.0 never passes
    assert client.get_run(champion.run_id).data.metrics["mR"] == 14.0
    failed = {v for v, mv in versions.items() if mv.tags["gate"] == "failed"}
    lowest = next(
        v for v, mv in versions.items() if client.get_run(mv.run_id).data.metrics["mR"] == 2.0
    )
    assert lowest in failed
    # previous-champion is exactly the version the champion replaced (the lock serialised it)
    assert state["previous-champion"] == (
        None if champion.tags["promoted_over"] == "none" else champion.tags["promoted_over"]
    )
    for version in failed:
        assert client.get_run(versions[version].run_id).data.metrics["mR"] < 14.0
