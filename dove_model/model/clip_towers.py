"""Towers from an open_clip model the user brings (RemoteCLIP, GeoRSCLIP): shared by the
dual family (``text_tower: open_clip``, trained heads on top) and the clip family (as is).

``model.clip_arch`` names an open_clip architecture (``open_clip.list_models()``); the
structure is built with no pretrained tag, so nothing is downloaded. ``model.clip_checkpoint``
is a local file holding a plain state dict: ``.safetensors``, or a ``torch.save`` file read
with ``weights_only=True`` (a pickled object is refused, never unpickled). Accepted shapes: a
bare state dict, ``{"state_dict": ...}``, ``{"model": ...}``, keys with a DDP ``module.``
prefix. The image tower fixes its input size and normalisation (``input``), as a ViT needs.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dove_model.errors import ConfigError
from dove_model.model.preprocess import INTERPOLATIONS, Preprocessing

WRAPPER_KEYS = ("state_dict", "model")
DDP_PREFIX = "module."


class ClipImageTower(nn.Module):
    """Pixels -> (B, embed_dim) open_clip image features (unnormalised)."""

    def __init__(self, visual: nn.Module, dim: int, input_spec: tuple[Preprocessing, int]) -> None:
        super().__init__()
        self.visual = visual
        self._dim = dim
        self.input = input_spec

    @property
    def dim(self) -> int:
        return self._dim

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.visual(pixels)


class ClipTextTower(nn.Module):
    """Captions -> (B, embed_dim) open_clip text features (unnormalised).

    Holds the open_clip model without its ``visual`` (that lives in the image tower), so no
    tensor is stored under two names."""

    def __init__(self, clip: nn.Module, tokenizer: Any, dim: int) -> None:
        super().__init__()
        self.clip = clip
        self.tokenizer = tokenizer
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        device = next(self.clip.parameters()).device
        tokens = self.tokenizer(list(texts)).to(device)
        return self.clip.encode_text(tokens)


def open_clip_towers(
    arch: str | None, checkpoint: str | None, *, pretrained: bool
) -> tuple[ClipImageTower, ClipTextTower]:
    """(image tower, text tower) of open_clip architecture ``arch``; ``pretrained``: weights
    from the ``checkpoint`` file, else random (a model directory's weights fill them)."""
    import open_clip

    arch = str(arch or "")
    config = _arch_config(open_clip, arch)
    path = Path(str(checkpoint or ""))
    state = read_state_dict(path) if pretrained else None  # a bad file fails before the build
    with _quiet_random_init_warning():
        clip = open_clip.create_model(
            arch, pretrained=None, pretrained_image=False, pretrained_text=False
        )
    if state is not None:
        load_state(clip, state, path, arch)
    tokenizer = open_clip.get_tokenizer(arch)
    dim = int(config["embed_dim"])
    image = ClipImageTower(clip.visual, dim, _input_spec(open_clip, clip))
    del clip.visual  # the image tower owns it
    return image, ClipTextTower(clip, tokenizer, dim)


@contextlib.contextmanager
def _quiet_random_init_warning() -> Iterator[None]:
    """open_clip warns on the root logger that the model is random (the checkpoint comes
    next), and that call would give the root logger a stderr handler; neither happens."""
    root = logging.getLogger()
    guard = logging.NullHandler()

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No pretrained weights loaded")

    root.addHandler(guard)
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)
        root.removeHandler(guard)


def _arch_config(open_clip: Any, arch: str) -> dict[str, Any]:
    """The built-in config of ``arch``; a ConfigError for an unknown name or for an
    architecture whose text side needs a download (Hugging Face models and tokenizers)."""
    if arch not in open_clip.list_models():
        raise ConfigError(
            f"model.clip_arch {arch!r} is not an open_clip architecture; see the known names "
            f'with `python -c "import open_clip; print(open_clip.list_models())"`'
        )
    config = open_clip.get_model_config(arch)
    text = config.get("text_cfg", {})
    if "hf_model_name" in text or "hf_tokenizer_name" in text or "siglip" in arch.lower():
        raise ConfigError(
            f"model.clip_arch {arch!r} needs a Hugging Face text model or tokenizer, which "
            "would be downloaded; use an architecture with open_clip's own tokenizer "
            "(e.g. ViT-B-32, ViT-L-14, RN50)"
        )
    return config


def _input_spec(open_clip: Any, clip: nn.Module) -> tuple[Preprocessing, int]:
    """(normalisation, square input size) the image tower was built for."""
    cfg = dict(open_clip.get_model_preprocess_cfg(clip))
    mean = tuple(float(v) for v in cfg.get("mean", open_clip.OPENAI_DATASET_MEAN))
    std = tuple(float(v) for v in cfg.get("std", open_clip.OPENAI_DATASET_STD))
    interpolation = str(cfg.get("interpolation", "bicubic"))
    if interpolation not in INTERPOLATIONS:
        interpolation = "bicubic"
    size = cfg.get("size", getattr(clip.visual, "image_size", None))
    sizes = (size, size) if isinstance(size, int) else tuple(size or ())
    if len(sizes) != 2 or sizes[0] != sizes[1]:
        raise ConfigError(f"open_clip image size {size!r}: only square inputs are supported")
    return Preprocessing(mean, std, interpolation), int(sizes[0])  # type: ignore[arg-type]


def load_state(clip: nn.Module, state: dict[str, torch.Tensor], path: Path, arch: str) -> None:
    """Fill ``clip`` with ``state`` (read from ``path``), strictly."""
    _match_scalar_shapes(clip, state)
    check_state_matches(clip, state, path, arch)
    clip.load_state_dict(state, strict=True)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, unwrapped and without a DDP prefix."""
    if not path.is_file():
        raise ConfigError(f"model.clip_checkpoint {path}: file not found")
    raw = _read_file(path)
    for key in WRAPPER_KEYS:
        if isinstance(raw, dict) and isinstance(raw.get(key), dict):
            raw = raw[key]
            break
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"model.clip_checkpoint {path}: not a state dict (name -> tensor)")
    state = {str(k).removeprefix(DDP_PREFIX): v for k, v in raw.items()}
    odd = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if odd:
        raise ConfigError(
            f"model.clip_checkpoint {path}: not a plain state dict; non-tensor entries {odd[:3]}"
        )
    return state


def _read_file(path: Path) -> Any:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own error type for a corrupt file
            raise ConfigError(f"{path}: not a readable safetensors file ({exc})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ConfigError(
            f"model.clip_checkpoint {path}: the file holds a pickled object, which is never "
            "unpickled; only plain state dicts (tensors) are read: save `model.state_dict()`"
        ) from None
    except Exception as exc:
        raise ConfigError(
            f"model.clip_checkpoint {path}: not a readable checkpoint ({exc})"
        ) from None


def _match_scalar_shapes(clip: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """``logit_scale``/``logit_bias`` are a scalar in some checkpoints, 1-d in others."""
    expected = clip.state_dict()
    for name in ("logit_scale", "logit_bias"):
        if name in state and name in expected and state[name].numel() == expected[name].numel():
            state[name] = state[name].reshape(expected[name].shape)


def check_state_matches(
    clip: nn.Module, state: dict[str, torch.Tensor], path: Path, arch: str
) -> None:
    """A ConfigError naming the architecture, the file and the first differences."""
    expected = clip.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    where = f"model.clip_checkpoint {path} does not fit model.clip_arch {arch!r}"
    if missing or extra:
        raise ConfigError(f"{where}: missing {missing[:3]}, unexpected {extra[:3]}")
    for name, tensor in expected.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise ConfigError(
                f"{where}: tensor {name} has shape {tuple(state[name].shape)}, "
                f"the architecture expects {tuple(tensor.shape)}"
            )
