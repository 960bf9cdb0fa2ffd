"""The retraining DAG: parses cleanly in a real DagBag, and runs end to end with dag.test().

Airflow runs in a subprocess with its own AIRFLOW_HOME (sqlite metadata, migrated with
`airflow db migrate`) so its configuration never leaks into other tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dove_model.testing import orchestrators

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGS = REPO_ROOT / "dags"
PYTHON = sys.executable

pytestmark = pytest.mark.integration

PARSE_SCRIPT = """
import json, time
from airflow.dag_processing.dagbag import DagBag
start = time.perf_counter()
bag = DagBag(dag_folder=DAGS_FOLDER)
dag = bag.dags["dove_retraining"]
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dags": sorted(bag.dags),
    "tasks": sorted(t.task_id for t in dag.tasks),
    "retries": sorted({t.retries for t in dag.tasks}),
    "backoff": sorted({float(t.retry_exponential_backoff) for t in dag.tasks}),
    "delay": sorted({t.retry_delay.total_seconds() for t in dag.tasks}),
    "schedule": type(dag.timetable).__name__,
    "timetable": repr(dag.timetable),
}))
"""


def airflow_env(home: Path) -> dict[str, str]:
    return orchestrators.airflow_env(home, DAGS)


def test_dag_folder_imports_without_errors(tmp_path: Path) -> None:
    script = f"DAGS_FOLDER = {str(DAGS)!r}\n" + PARSE_SCRIPT
    done = subprocess.run(
        [PYTHON, "-c", script],
        env=airflow_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    assert report["dags"] == ["dove_feedback_signal", "dove_retraining"]
    assert report["tasks"] == [
        "detect_data_version",
        "gate_passed",
        "ingest_archive",
        "promote",
        "roll_service",
        "run_pipeline",
    ]
    # Airflow 3 reads the backoff as a multiplier (True would be 1: a constant delay)
    assert report["retries"] == [2] and report["backoff"] == [2.0] and report["delay"] == [60.0]
    assert report["schedule"] == "AssetOrTimeSchedule"
    assert "dove-data-version" in report["timetable"] and "0 3 * * 1" in report["timetable"]


def test_parsing_the_dag_imports_no_heavy_library(tmp_path: Path) -> None:
    script = (
        f"import sys; sys.path.insert(0, {str(DAGS)!r}); import dove_retraining; "
        "heavy = [m for m in ('torch', 'mlflow', 'kfp', 'bentoml', 'dove_model') "
        "if m in sys.modules]; print(heavy)"
    )
    done = subprocess.run(
        [PYTHON, "-c", script],
        env=airflow_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated sqlite Airflow home, shared by the module's DAG runs."""
    home = tmp_path_factory.mktemp("airflow-home")
    orchestrators.migrate_airflow(home, DAGS)
    return home


@pytest.fixture(scope="module")
def airflow_project(
    airflow_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, dict]:
    """The Airflow home, a smoke project (DOVE), and the first dag.test() result."""
    from dove_model.testing.smoke import write_smoke_project

    project = tmp_path_factory.mktemp("airflow-project")
    write_smoke_project(project)
    return airflow_home, project, orchestrators.dag_test(airflow_home, DAGS, project)


@pytest.fixture(scope="module")
def clip_airflow_project(
    airflow_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, dict]:
    """The same with the clip family's tiny checkpoint zero-shot: params.yaml alone picks it."""
    from dove_model.testing.smoke import clip_smoke, write_smoke_project

    project = tmp_path_factory.mktemp("airflow-project-clip")
    write_smoke_project(project, clip_smoke(project))
    return airflow_home, project, orchestrators.dag_test(airflow_home, DAGS, project)


# family -> the fixture of its first DAG run (the tests below go on from DOVE's alone)
FIRST_RUNS = {"dove": "airflow_project", "clip": "clip_airflow_project"}


@pytest.mark.parametrize("family", sorted(FIRST_RUNS))
def test_dag_test_runs_the_whole_dag_end_to_end(
    family: str, request: pytest.FixtureRequest
) -> None:
    from mlflow import MlflowClient

    from dove_model.config import load_params
    from dove_model.index import load_archive
    from dove_model.pipeline.retraining import detect_data_version
    from dove_model.registry import alias_state
    from dove_model.registry.register import FAMILY_TAG
    from dove_model.registry.tracking import resolve_tracking_uri

    _, project, result = request.getfixturevalue(FIRST_RUNS[family])
    assert result["state"] == "success", result["tasks"]
    assert set(result["tasks"].values()) == {"success"}
    params = load_params(project / "params.yaml")
    assert params.train.active.model.family == family
    assert alias_state(params, root=project)["champion"] == "1"
    uri = resolve_tracking_uri(params.register_, root=project, environ={})
    version = MlflowClient(uri, uri).get_model_version(params.register_.model_name, "1")
    assert version.tags["pipeline_data_version"] == detect_data_version(str(project))
    assert version.tags[FAMILY_TAG] == family
    # the service's index was rolled, by the champion
    index = load_archive(project / params.index.out_dir, params.index)
    assert index.meta["family"] == family and index.meta["model"]["model_version"] == "1"
    assert result["xcoms"]["roll_service"]["path"] == "full"


def test_rerunning_the_pipeline_task_for_the_same_data_version_is_idempotent(
    airflow_project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a retry or a second DAG run of `run_pipeline` does: find the registered version
    for this data version and return it without running the pipeline again."""
    from dove_model.pipeline.retraining import detect_data_version, run_pipeline

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    _, project, _ = airflow_project
    runs_before = sorted((project / "local_outputs").iterdir())
    version = detect_data_version(str(project))
    result = run_pipeline(str(project), "params.yaml", version)
    assert result == {"data_version": version, "model_version": "1", "gate": "passed"}
    assert sorted((project / "local_outputs").iterdir()) == runs_before


def test_a_data_update_that_keeps_the_champion_updates_the_index_incrementally(
    airflow_project, tmp_path: Path
) -> None:
    """The first run (above) promoted v1 and rolled a full rebuild. On a copy of that project,
    the data grows 48 -> 52 images (a new data version) and the floor is one no model can
    reach, so v2 is registered as challenger, v1 stays champion and the roll-out encodes only
    the 4 new images into the existing index."""
    import shutil

    import yaml

    from dove_model.config import load_params
    from dove_model.index import load_archive
    from dove_model.registry import alias_state

    home, first_project, first = airflow_project
    assert first["xcoms"]["roll_service"]["path"] == "full"
    assert "full rebuild: new champion v1" in first["output"]
    project = shutil.copytree(first_project, tmp_path / "project", symlinks=True)
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["data"]["synth"]["n_images"] = 52
    raw["register"]["gates"]["min_metrics"] = {"mR": 1000.0}
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))

    result = orchestrators.dag_test(home, DAGS, project)

    assert result["state"] == "success", result["tasks"]
    assert result["xcoms"]["run_pipeline"]["model_version"] == "2"
    assert result["xcoms"]["run_pipeline"]["gate"] == "failed"  # the champion stays
    assert result["tasks"]["promote"] == "skipped"
    assert result["tasks"]["roll_service"] == "success"
    rolled = result["xcoms"]["roll_service"]
    assert rolled["path"] == "incremental" and rolled["model_version"] == "1"
    assert (rolled["added"], rolled["removed"], rolled["kept"]) == ("4", "0", "48")
    assert "incremental: +4 -0 images" in result["output"]
    params = load_params(project / "params.yaml")
    assert alias_state(params, root=project)["champion"] == "1"
    archive = load_archive(project / params.index.out_dir, params.index)
    assert archive.n_images == 52
    assert archive.meta["incremental"]["added"] == 4


def test_rolling_out_again_with_nothing_new_writes_no_index_version(
    airflow_project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index is already v1's on this data: `roll_service` says so and writes nothing."""
    from dove_model.config import load_params
    from dove_model.index.versions import list_versions, read_pointer
    from dove_model.pipeline.retraining import roll_service

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    _, project, _ = airflow_project
    root = project / load_params(project / "params.yaml").index.out_dir
    before = (read_pointer(root), list_versions(root))
    rolled = roll_service(str(project), "params.yaml")
    assert (rolled["path"], rolled["model_version"]) == ("unchanged", "1")
    assert rolled["index_version"] == before[0] and rolled["n_images"] == "48"
    assert (read_pointer(root), list_versions(root)) == before


def test_a_rerun_never_promotes_a_replaced_champion_again(
    airflow_project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """v2 replaces v1, `dove rollback` brings v1 back: the DAG's promote task on v2 (a rerun
    on v2's data version, whose gate passed) leaves v1 champion."""
    import shutil

    from dove_model.config import load_params
    from dove_model.pipeline.retraining import promote_if_gated
    from dove_model.registry import DataVersion, alias_state, register, rollback
    from dove_model.registry.promotion import download_version

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    _, first_project, _ = airflow_project
    project = shutil.copytree(first_project, tmp_path / "project", symlinks=True)
    params = load_params(project / "params.yaml")
    model_dir = download_version(params, "1", tmp_path / "v1", root=project)
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"split": "test", "mR": 50.0}))
    data = DataVersion("other-data", None, "rev")
    assert register(model_dir, metrics, params, data, root=project).promoted  # v2
    rollback(params, root=project)
    assert alias_state(params, root=project)["champion"] == "1"

    assert promote_if_gated(str(project), "params.yaml", "2") == []
    assert promote_if_gated(str(project), "params.yaml", "1") == []  # already champion
    assert alias_state(params, root=project) == {
        "champion": "1",
        "previous-champion": None,
        "challenger": "2",
    }


def test_an_unreadable_data_dvc_fails_detection_instead_of_falling_back(tmp_path: Path) -> None:
    """`data.dvc` caught mid-rewrite (empty) or with merge-conflict markers: the task fails
    (Airflow retries it) rather than training under the params' hash."""
    from dove_model.errors import DataFormatError
    from dove_model.pipeline.retraining import detect_data_version
    from dove_model.testing.smoke import write_smoke_project

    write_smoke_project(tmp_path)
    assert detect_data_version(str(tmp_path)).startswith("params-")  # no DVC: the params
    dvc_file = tmp_path / "data.dvc"
    for broken in ("", "<<<<<<< HEAD\nouts:\n- md5: a.dir\n=======\n"):
        dvc_file.write_text(broken)
        with pytest.raises(DataFormatError, match="not a DVC file"):
            detect_data_version(str(tmp_path))
    dvc_file.write_text("outs:\n- md5: 0123abcd.dir\n  path: data\n")
    assert detect_data_version(str(tmp_path)) == "0123abcd.dir"
