"""The registry on a real sqlite MLflow store: aliases, gates, promote, rollback.

The model directory here holds placeholder files: these tests exercise registration and
aliases, not the model (tests/integration/test_mlflow_*.py load a trained one).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dove_model.config import Params, parse_params
from dove_model.errors import DoveError, GateFailed
from dove_model.registry import (
    DataVersion,
    alias_state,
    download_champion,
    promote,
    register,
    resolve_tracking_uri,
    rollback,
)
from dove_model.registry.tracking import detect_data_version

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    model = tmp_path / "train" / "model"
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"placeholder")
    (model / "config.json").write_text("{}")
    (model / "vocab.json").write_text("{}")
    history = [{"epoch": 1, "loss": 1.2, "val_mR": 3.0}, {"epoch": 2, "loss": 0.8, "val_mR": 7.0}]
    (tmp_path / "train" / "history.json").write_text(json.dumps(history))
    return tmp_path


def _params(max_regression: float = 1.0) -> Params:
    return parse_params(
        {"register": {"gates": {"min_metrics": {"mR": 5.0}, "max_regression": max_regression}}}
    )


def _register(project: Path, mr: float, data: str = "v1", params: Params | None = None):
    metrics = project / f"metrics-{mr}.json"
    metrics.write_text(json.dumps({"split": "test", "mR": mr, "i2t_r1": mr / 2}))
    return register(
        project / "train" / "model",
        metrics,
        params or _params(),
        DataVersion(data, None, "rev"),
        out_file=project / "registration.json",
        root=project,
    )


def test_tracking_uri_defaults_to_sqlite_in_the_project_and_env_overrides(tmp_path: Path) -> None:
    register_params = Params().register_
    uri = resolve_tracking_uri(register_params, root=tmp_path, environ={})
    assert uri == f"sqlite:///{tmp_path.resolve()}/mlruns/mlflow.db"
    env = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}
    assert (
        resolve_tracking_uri(register_params, root=tmp_path, environ=env)
        == env["MLFLOW_TRACKING_URI"]
    )


def test_first_passing_model_becomes_champion_and_a_better_one_replaces_it(
    project: Path,
) -> None:
    first = _register(project, 10.0)
    assert first.promoted and first.champion_version == "1"
    assert json.loads((project / "registration.json").read_text())["version"] == "1"
    second = _register(project, 12.0)
    assert second.promoted
    assert "previous-champion: (none) -> v1" in second.alias_changes
    assert alias_state(_params(), root=project) == {
        "champion": "2",
        "previous-champion": "1",
        "challenger": "2",
    }


def test_a_worse_model_stays_challenger(project: Path) -> None:
    _register(project, 12.0)
    worse = _register(project, 9.0)
    assert not worse.promoted
    assert "regresses 3.00 points" in worse.gate
    assert alias_state(_params(), root=project)["champion"] == "1"
    assert alias_state(_params(), root=project)["challenger"] == "2"
    with pytest.raises(GateFailed, match="recall gate failed"):
        promote(_params(), "2", root=project)
    assert [str(c) for c in promote(_params(), "2", force=True, root=project)] == [
        "previous-champion: (none) -> v1",
        "champion: v1 -> v2",
    ]


def test_below_the_floor_is_never_champion(project: Path) -> None:
    result = _register(project, 2.0)
    assert not result.promoted and result.champion_version is None
    with pytest.raises(DoveError, match="no champion yet"):
        download_champion(_params(), project / "dl", root=project)


def test_champion_on_another_data_version_is_compared_on_floors_only(project: Path) -> None:
    _register(project, 20.0, data="old")
    result = _register(project, 10.0, data="new")
    assert result.promoted


def test_rollback_restores_the_previous_champion_and_steps_back(project: Path) -> None:
    for mr in (10.0, 11.0, 12.0):
        _register(project, mr)
    changes = [str(c) for c in rollback(_params(), root=project)]
    assert changes == ["champion: v3 -> v2", "previous-champion: v2 -> v1"]
    assert alias_state(_params(), root=project)["champion"] == "2"
    rollback(_params(), root=project)
    assert alias_state(_params(), root=project)["previous-champion"] is None
    with pytest.raises(DoveError, match="no previous-champion"):
        rollback(_params(), root=project)
    assert promote(_params(), "1", root=project) == []  # already champion: nothing changes


def test_run_logs_params_history_data_version_plots_and_metrics(project: Path) -> None:
    from mlflow import MlflowClient

    result = _register(project, 10.0)
    uri = resolve_tracking_uri(_params().register_, root=project, environ={})
    client = MlflowClient(uri)
    run = client.get_run(result.run_id)
    assert run.data.tags["data_version"] == "v1"
    assert run.data.tags["git_revision"] == "rev"
    assert run.data.params["model.backbone"] == "resnet50"  # the default profile's model
    assert run.data.metrics["mR"] == 10.0
    history = client.get_metric_history(result.run_id, "train.val_mR")
    assert [(m.step, m.value) for m in history] == [(1, 3.0), (2, 7.0)]
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert artifacts == {"plots/recall_bars.png", "plots/training_curves.png"}
    model_dir = download_champion(_params(), project / "dl", root=project)
    assert (model_dir / "model.safetensors").read_bytes() == b"placeholder"


def test_missing_model_files_and_bad_metrics_are_user_errors(project: Path) -> None:
    (project / "bad.json").write_text("{not json")
    with pytest.raises(DoveError, match=r"bad.json:1: not valid JSON"):
        register(
            project / "train" / "model",
            project / "bad.json",
            _params(),
            DataVersion("v", None, "r"),
            root=project,
        )
    with pytest.raises(DoveError, match="not a DOVE model directory"):
        register(
            project, project / "bad.json", _params(), DataVersion("v", None, "r"), root=project
        )


def test_data_version_is_a_content_hash_of_the_manifest(tmp_path: Path) -> None:
    import pandas as pd

    from dove_model.data.manifest import MANIFEST_COLUMNS, write_manifest

    row = {c: "" for c in MANIFEST_COLUMNS}
    row |= {"image_id": "a", "caption_id": 0, "caption": "a plane", "split": "train"}
    row |= {"sha256": "00", "width": 64, "height": 64, "source_line": 1}
    frame = pd.DataFrame([row])
    write_manifest(frame, tmp_path / "d1")
    write_manifest(frame.iloc[::-1], tmp_path / "d2")
    first = detect_data_version(tmp_path / "d1", root=tmp_path)
    assert first.tag == detect_data_version(tmp_path / "d2", root=tmp_path).tag
    write_manifest(frame.assign(caption="two planes"), tmp_path / "d3")
    assert detect_data_version(tmp_path / "d3", root=tmp_path).tag != first.tag
    assert first.dvc_md5 is None and first.as_tags()["data_dvc_md5"] == "untracked"


def test_configure_leaves_the_environment_as_the_user_set_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from dove_model.registry.tracking import configure

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first = configure(Params().register_, tmp_path / "a")
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert configure(Params().register_, tmp_path / "b") != first


def test_promote_and_rollback_commands_print_what_they_changed(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml
    from typer.testing import CliRunner

    from dove_model.cli import app

    _register(project, 10.0)
    _register(project, 12.0)
    params_file = project / "params.yaml"
    params_file.write_text(yaml.safe_dump(_params().model_dump(mode="json", by_alias=True)))
    monkeypatch.chdir(project)
    runner = CliRunner()
    rolled = runner.invoke(app, ["rollback", "-p", str(params_file)])
    assert rolled.exit_code == 0, rolled.output
    assert "champion: v2 -> v1" in rolled.output
    promoted = runner.invoke(app, ["promote", "2", "-p", str(params_file)])
    assert promoted.exit_code == 0, promoted.output
    assert "champion: v1 -> v2" in promoted.output
    again = runner.invoke(app, ["promote", "2", "-p", str(params_file)])
    assert "no alias changed" in again.output
    shown = runner.invoke(app, ["champion", "-p", str(params_file)])
    assert "champion: v2" in shown.output and "previous-champion: v1" in shown.output


def _client(project: Path):
    from mlflow import MlflowClient

    uri = resolve_tracking_uri(_params().register_, root=project, environ={})
    return MlflowClient(uri, uri)


def test_the_registry_lease_is_exclusive_named_and_released(project: Path) -> None:
    from dove_model.registry.lease import read_holder, registry_lease

    _register(project, 10.0)
    client, name = _client(project), _params().register_.model_name
    with registry_lease(client, name) as held:
        assert read_holder(client, name).owner == held.owner
        with (
            pytest.raises(DoveError, match=r"registry lease .* still held by .* after 0 s"),
            registry_lease(client, name, timeout=0.3),
        ):
            pass
        held.verify()
    assert read_holder(client, name) is None  # released
    assert alias_state(_params(), root=project)["champion"] == "1"  # not a model of its own


def test_an_expired_lease_is_broken_and_its_late_holder_told(project: Path) -> None:
    from dove_model.registry.lease import read_holder, registry_lease

    _register(project, 10.0)
    client, name = _client(project), _params().register_.model_name
    with registry_lease(client, name, ttl=0.0) as dead:  # a holder that stopped responding
        with registry_lease(client, name, timeout=5.0) as taker:
            assert read_holder(client, name).owner == taker.owner
            with pytest.raises(DoveError, match="lease expired while this run was writing"):
                dead.verify()
        assert read_holder(client, name) is None
    assert read_holder(client, name) is None  # the late holder does not delete a lease


def test_aliases_are_re_read_after_writing(project: Path) -> None:
    from dove_model.registry import aliases

    _register(project, 10.0)
    _register(project, 12.0)
    client, name = _client(project), _params().register_.model_name
    changes = aliases.make_champion(client, name, "1")
    aliases.verify_aliases(client, name, changes)
    client.set_registered_model_alias(name, "champion", "2")  # a writer without the lease
    with pytest.raises(DoveError, match=r"champion is v2 right after this run set champion"):
        aliases.verify_aliases(client, name, changes)
    assert aliases.set_challenger(client, name, "1") == []  # never moves back to an older one


def test_a_champion_promoted_while_gating_is_gated_against(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate compares with the champion read before the lease; if another host promoted
    a better version meanwhile, the decision is taken again against that one."""
    import importlib

    from dove_model.registry import aliases
    from dove_model.registry.lease import registry_lease

    _register(project, 10.0)
    _register(project, 12.0)
    rollback(_params(), root=project)  # champion v1 (mR 10), v2 (mR 12) waiting
    register_module = importlib.import_module("dove_model.registry.register")
    real = register_module.champion_metrics
    calls = []

    def promote_meanwhile(client, name, champion, *args):
        calls.append(str(champion.version))
        if len(calls) == 1:  # another host promotes v2: under the lease, not our file lock
            with registry_lease(client, name):
                aliases.make_champion(client, name, "2")
        return real(client, name, champion, *args)

    monkeypatch.setattr(register_module, "champion_metrics", promote_meanwhile)
    third = _register(project, 10.5)  # passes against v1 (10), regresses 1.5 against v2
    assert calls == ["1", "2"]
    assert not third.promoted and "regresses 1.50 points" in third.gate
    assert alias_state(_params(), root=project) == {
        "champion": "2",
        "previous-champion": "1",
        "challenger": "3",
    }


def _as_family(project: Path, family: str) -> None:
    """The placeholder model directory as one of ``family`` (config.json says so)."""
    model = project / "train" / "model"
    (model / "config.json").write_text(json.dumps({"family": family}))
    if family == "dual":
        (model / "vocab.json").unlink(missing_ok=True)  # a dual directory has none
    else:
        (model / "vocab.json").write_text("{}")


def test_families_compete_under_one_gate_and_the_champion_names_its_family(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml
    from typer.testing import CliRunner

    from dove_model.cli import app
    from dove_model.registry.promotion import alias_families
    from dove_model.registry.register import FAMILY_TAG

    _as_family(project, "dove")
    assert _register(project, 10.0).promoted  # v1: a DOVE champion
    _as_family(project, "dual")
    better = _register(project, 12.0)  # v2: a dual challenger that beats it
    assert better.promoted and better.champion_version == "2"
    worse = _register(project, 8.0)  # v3: a dual that regresses against the dual champion
    assert not worse.promoted and "regresses 4.00 points" in worse.gate
    _as_family(project, "dove")
    also_worse = _register(project, 10.5)  # v4: a DOVE model below the dual champion
    assert not also_worse.promoted
    client = _client(project)
    name = _params().register_.model_name
    tags = {v: client.get_model_version(name, v).tags[FAMILY_TAG] for v in ("1", "2", "3", "4")}
    assert tags == {"1": "dove", "2": "dual", "3": "dual", "4": "dove"}
    assert alias_families(_params(), root=project) == {
        "champion": "dual",
        "previous-champion": "dove",
        "challenger": "dove",
    }
    params_file = project / "params.yaml"
    params_file.write_text(yaml.safe_dump(_params().model_dump(mode="json", by_alias=True)))
    monkeypatch.chdir(project)
    shown = CliRunner().invoke(app, ["champion", "-p", str(params_file)])
    assert "champion: v2 (dual)" in shown.output and "previous-champion: v1 (dove)" in shown.output


def test_each_version_signature_and_metadata_record_its_family(project: Path) -> None:
    from mlflow.models import get_model_info

    _as_family(project, "dual")
    result = _register(project, 10.0)
    info = get_model_info(result.model_uri)
    assert info.metadata == {"family": "dual"}
    family = next(p for p in info.signature.params.params if p.name == "family")
    assert family.default == "dual"
