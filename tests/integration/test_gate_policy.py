"""The same gate failure leaves the same registry state, whichever orchestrator ran it.

One smoke model (of the dual family: so this also shows that each orchestrator trains the
second family from params.yaml alone; DOVE runs in their own tests) whose recall floor no
model can meet (mR >= 101 %) goes through `dvc repro`
(up to register), the KFP local runner (`dove pipeline run --local`) and Airflow's
`dag.test()`, each in a copy of one fresh clone of this working tree (same commit, same data,
an empty registry). The register stage decides (docs/pipeline.md, "Aliases and gates"): every
orchestrator registers the version as challenger, tags it `gate=failed` and makes no champion;
none skips register or applies the floors itself.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dove_model.config import load_params
from dove_model.registry.gates import GateVerdict
from dove_model.registry.register import FAMILY_TAG, GATE_TAG, RUN_KEY_TAG
from dove_model.testing.orchestrators import (
    commit_all,
    dag_test,
    dvc,
    fresh_clone,
    kfp_local_run,
    migrate_airflow,
    registry_state,
)
from dove_model.testing.smoke import DUAL_SMOKE, write_smoke_project

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGS = REPO_ROOT / "dags"
IMPOSSIBLE_FLOOR = {"register": {"gates": {"min_metrics": {"mR": 101.0}}}}  # recalls <= 100
DUAL_WITH_IMPOSSIBLE_FLOOR = {**DUAL_SMOKE, **IMPOSSIBLE_FLOOR}
ORCHESTRATORS = ("dvc", "kfp", "airflow")

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.filterwarnings("ignore")]


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One fresh clone with the failing smoke params committed, copied once per orchestrator."""
    base = tmp_path_factory.mktemp("gate-policy")
    template = fresh_clone(REPO_ROOT, base / "clone")
    write_smoke_project(template, DUAL_WITH_IMPOSSIBLE_FLOOR)
    commit_all(template, "smoke params with an impossible recall floor")
    return {name: Path(shutil.copytree(template, base / name)) for name in ORCHESTRATORS}


@pytest.fixture(scope="module")
def states(projects: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The registry each orchestrator left, plus the Airflow run's task states."""
    dvc(projects["dvc"], "repro", "register")
    done = kfp_local_run(projects["kfp"])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    home = tmp_path_factory.mktemp("airflow-home")
    migrate_airflow(home, DAGS)
    airflow = dag_test(home, DAGS, projects["airflow"])
    params = load_params(projects["dvc"] / "params.yaml")
    registries = {name: registry_state(params, root) for name, root in projects.items()}
    return {"registries": registries, "airflow": airflow}


def test_every_orchestrator_leaves_the_same_registry(states: dict) -> None:
    registries = states["registries"]
    assert registries["kfp"] == registries["dvc"]
    assert registries["airflow"] == registries["dvc"]


def test_the_failed_version_is_registered_as_challenger_and_not_champion(
    states: dict, projects: dict[str, Path]
) -> None:
    from dove_model.pipeline.run import pipeline_data_version

    registry = states["registries"]["dvc"]
    params = load_params(projects["dvc"] / "params.yaml")
    assert registry["models"] == [params.register_.model_name]  # no lease left behind
    assert registry["aliases"] == {"challenger": "1"}
    tags = registry["versions"]["1"]
    assert tags[GATE_TAG] == GateVerdict.FAILED
    assert tags[FAMILY_TAG] == "dual"
    assert tags[RUN_KEY_TAG] == pipeline_data_version(params, projects["dvc"])
    assert not tags["git_revision"].endswith("-dirty")


def test_airflow_stops_before_promote_and_roll_out(states: dict) -> None:
    airflow = states["airflow"]
    assert airflow["state"] == "success"
    assert airflow["tasks"]["run_pipeline"] == "success"
    assert airflow["tasks"]["promote"] == airflow["tasks"]["roll_service"] == "skipped"


def test_kfp_skips_only_deploy(projects: dict[str, Path], states: dict) -> None:
    params = load_params(projects["kfp"] / "params.yaml")
    (run_dir,) = (projects["kfp"] / params.pipeline.local_root).iterdir()
    ran = {p.name for p in run_dir.iterdir()}
    assert ran == {"prepare", "validate", "train", "evaluate", "register"}
