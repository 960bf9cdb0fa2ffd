"""Towers the user brings: a tiny random open_clip model saved as RemoteCLIP ships its
checkpoints (a plain state dict), read without unpickling anything."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import open_clip
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from dove_model.config import load_params
from dove_model.data.prepare import prepare
from dove_model.errors import ConfigError
from dove_model.families.clip.tiny import TINY_CLIP, tiny_clip_config
from dove_model.model.clip_towers import ClipImageTower, open_clip_towers
from dove_model.testing.smoke import DUAL_SMOKE, write_smoke_project

TINY = TINY_CLIP
NARROW = "dove-test-tiny-clip-narrow"  # same layout, other widths: the wrong architecture
DOVE = [str(Path(sys.executable).with_name("dove"))]
CAPTIONS = ["a runway next to green fields", "many cars parked in rows"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    """(the tiny model, its plain state dict saved with torch.save), both archs registered."""
    folder = tmp_path_factory.mktemp("clip-configs")
    for name, width, embed_dim in ((TINY, 64, 32), (NARROW, 32, 16)):
        (folder / f"{name}.json").write_text(json.dumps(tiny_clip_config(width, embed_dim)))
        open_clip.add_model_config(folder / f"{name}.json")
    torch.manual_seed(0)
    model = open_clip.create_model(TINY, pretrained=None).eval()
    checkpoint = folder / "RemoteCLIP-tiny.pt"
    torch.save(model.state_dict(), checkpoint)
    return model, checkpoint


def _params(arch: str, checkpoint: Path) -> tuple[str, str]:
    return arch, str(checkpoint)


def _same_outputs(towers: tuple[torch.nn.Module, torch.nn.Module], model: Any) -> None:
    image, text = (t.eval() for t in towers)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(image(pixels), model.encode_image(pixels), atol=1e-5)
        tokens = open_clip.get_tokenizer(TINY)(CAPTIONS)
        assert torch.allclose(text(CAPTIONS), model.encode_text(tokens), atol=1e-5)


def test_remoteclip_state_dict_loads_and_towers_match_the_model(tiny: Any) -> None:
    model, checkpoint = tiny
    towers = open_clip_towers(*_params(TINY, checkpoint), pretrained=True)
    _same_outputs(towers, model)
    image, text = towers
    assert isinstance(image, ClipImageTower)
    assert image.dim == text.dim == 32
    prep, size = image.input
    assert size == 32 and prep.mean == pytest.approx(open_clip.OPENAI_DATASET_MEAN)
    assert prep.interpolation == "bicubic"
    names = [n for t in towers for n, _ in t.named_parameters()]
    assert len(names) == len(set(names)) and not any(
        "visual" in n for n, _ in text.named_parameters()
    )


def test_wrapped_ddp_checkpoint_loads(tiny: Any, tmp_path: Path) -> None:
    model, _ = tiny
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}
    torch.save(wrapped, tmp_path / "georsclip.pt")
    _same_outputs(
        open_clip_towers(*_params(TINY, tmp_path / "georsclip.pt"), pretrained=True), model
    )


def test_safetensors_checkpoint_loads(tiny: Any, tmp_path: Path) -> None:
    model, _ = tiny
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp_path / "tiny.safetensors"))
    _same_outputs(
        open_clip_towers(*_params(TINY, tmp_path / "tiny.safetensors"), pretrained=True), model
    )


def test_wrong_architecture_is_a_config_error(tiny: Any) -> None:
    _, checkpoint = tiny
    with pytest.raises(ConfigError, match=rf"does not fit model.clip_arch '{NARROW}'.*shape"):
        open_clip_towers(*_params(NARROW, checkpoint), pretrained=True)


def test_unknown_architecture_and_missing_file_are_config_errors(tiny: Any, tmp_path: Path) -> None:
    _, checkpoint = tiny
    with pytest.raises(ConfigError, match="list_models"):
        open_clip_towers(*_params("ViT-Nope-99", checkpoint), pretrained=True)
    with pytest.raises(ConfigError, match="file not found"):
        open_clip_towers(*_params(TINY, tmp_path / "absent.pt"), pretrained=True)


class _Payload:
    """Unpickling this would write a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "pwned"))


def test_pickled_objects_are_refused_and_never_run(tiny: Any, tmp_path: Path) -> None:
    model, _ = tiny
    marker = tmp_path / "marker"
    torch.save({"state_dict": _Payload(marker)}, tmp_path / "evil.pt")
    torch.save(model, tmp_path / "whole-module.pt")
    for name in ("evil.pt", "whole-module.pt"):
        with pytest.raises(ConfigError, match="pickled object"):
            open_clip_towers(*_params(TINY, tmp_path / name), pretrained=True)
    assert not marker.exists()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared smoke project (synthetic scenes)."""
    root = tmp_path_factory.mktemp("clip-project")
    params_file = write_smoke_project(root)
    with contextlib.chdir(root):
        prepare(load_params(params_file), progress=False)
    return root


def _clip_profile(arch: str, checkpoint: Path, epochs: int = 3) -> dict[str, Any]:
    overrides = json.loads(json.dumps(DUAL_SMOKE))
    profile = overrides["train"]["profiles"]["smoke-dual"]
    profile["epochs"] = epochs
    profile["model"].update(text_tower="open_clip", clip_arch=arch, clip_checkpoint=str(checkpoint))
    return overrides


def _dove_train(root: Path) -> subprocess.CompletedProcess[str]:
    src = str(Path(__file__).resolve().parents[2])
    env = {"PYTHONPATH": src, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [*DOVE, "train"], cwd=root, capture_output=True, text=True, env=env, timeout=300
    )


def test_cli_exits_2_on_a_wrong_architecture_or_a_pickled_file(
    tiny: Any, project: Path, tmp_path: Path
) -> None:
    model, checkpoint = tiny
    torch.save(model, tmp_path / "whole-module.pt")
    for bad, expected in ((checkpoint, "does not fit"), (tmp_path / "whole-module.pt", "pickled")):
        write_smoke_project(project, _clip_profile("ViT-S-32-alt", bad))
        result = _dove_train(project)
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_tiny_clip_trains_encodes_and_reloads_without_its_checkpoint(
    tiny: Any, project: Path, tmp_path: Path
) -> None:
    from dove_model.families.dispatch import load_encoder, train

    _, original = tiny
    checkpoint = tmp_path / "tiny.pt"
    checkpoint.write_bytes(original.read_bytes())
    params_file = write_smoke_project(project, _clip_profile(TINY, checkpoint))
    with contextlib.chdir(project):
        params = load_params(params_file)
        dataset = Path(params.data.prepared_dir) / params.data.name
        result = train(dataset, params, tmp_path / "out", progress=False)
    assert result.epochs_run == 3
    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["eval_size"] == 32 and config["model"]["clip_arch"] == TINY
    checkpoint.unlink()
    encoder = load_encoder(result.model_dir)
    image = Image.new("RGB", (48, 40), (90, 140, 60))
    vectors = encoder.encode_images([image]).v_m, encoder.encode_texts(CAPTIONS[:1]).t_g
    assert [v.shape for v in vectors] == [(1, 64), (1, 64)]
    assert all(abs(float((v**2).sum()) - 1) < 1e-4 for v in vectors)
