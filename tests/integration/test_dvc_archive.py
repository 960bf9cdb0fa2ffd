"""`dvc repro pipelines/archive/dvc.yaml` ingests a catalog as a stage (issue 28), for real, in
a fresh clone: two COG scenes made here, `archive.source` set in params.yaml, the
`archive_ingest` stage (`dove archive build`) cuts them into chips and `archive_validate`
(`dove archive validate`) runs the geo gate. A plain `dvc repro` does not include them; an
unchanged second run does nothing; a gate bound the archive misses stops the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dove_model.geo.outputs import read_chips
from dove_model.testing.geo_deployment import set_archive, two_scenes
from dove_model.testing.orchestrators import BIN, commit_all, dvc, fresh_clone, run_tool
from dove_model.testing.smoke import write_smoke_project

REPO_ROOT = Path(__file__).resolve().parents[2]
PIPELINE = "pipelines/archive/dvc.yaml"

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore")]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = fresh_clone(REPO_ROOT, tmp_path_factory.mktemp("dvc-archive"))
    write_smoke_project(root)
    two_scenes(root / "scenes")
    set_archive(root, source="scenes", ingest={"chip_size": 32, "workers": 1})
    commit_all(root, "an archive source")
    return root


@pytest.fixture(scope="module")
def first_repro(project: Path) -> str:
    return dvc(project, "repro", PIPELINE)


def test_a_plain_repro_leaves_the_archive_stages_out(project: Path) -> None:
    """`dvc repro` without a target reproduces ./dvc.yaml, the stages `dvc stage list` names."""
    default, every = dvc(project, "stage", "list"), dvc(project, "stage", "list", "--all")
    assert "prepare" in default and "archive_" not in default
    assert f"{PIPELINE}:archive_ingest" in every and f"{PIPELINE}:archive_validate" in every


def test_repro_ingests_the_source_and_runs_the_geo_gate(project: Path, first_repro: str) -> None:
    assert f"Running stage '{PIPELINE}:archive_ingest'" in first_repro
    assert f"Running stage '{PIPELINE}:archive_validate'" in first_repro
    chips = read_chips(project / "artifacts/chips")
    assert len(chips) == 32 and {Path(i).name for i in chips["item_id"]} == {"a", "b"}
    summary = json.loads((project / "reports/archive/summary.json").read_text())
    assert summary["passed"] and summary["counts"] == {
        "images": summary["counts"]["images"],
        "captions": 0,
        "scenes": 2,
        "scenes_with_chips": 2,
        "chips": 32,
    }
    assert (project / "reports/archive/data_docs/index.html").is_file()
    lock = yaml.safe_load((project / "pipelines/archive/dvc.lock").read_text())["stages"]
    assert lock["archive_ingest"]["params"]["params.yaml"]["archive.ingest"]["chip_size"] == 32
    shown = dvc(project, "metrics", "show", "--json")
    assert "reports/archive/summary.json" in shown


def test_a_second_repro_does_nothing(project: Path, first_repro: str) -> None:
    output = dvc(project, "repro", PIPELINE)
    assert "Running stage" not in output and "up to date" in output


def test_a_missed_gate_bound_stops_the_pipeline(project: Path, first_repro: str) -> None:
    set_archive(project, checks={"min_scenes": 3})
    done = run_tool(project, str(BIN / "dvc"), "repro", PIPELINE)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert f"{PIPELINE}:archive_ingest' didn't change" in output  # only the gate re-ran
    assert "geo gate failed: scene_count_within_bounds" in output
