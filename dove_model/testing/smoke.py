"""A tiny but complete project configuration: 48 synthetic 64 px images, one epoch.

Used by the pipeline's integration tests and handy for trying an orchestrator end to end in
about a minute on a laptop CPU (``dove pipeline run --local -p <dir>/params.yaml``).
"""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path
from typing import Any

import yaml

from dove_model.atomic import write_text
from dove_model.config import parse_params
from dove_model.families.dual.spec import TINY_PROFILE as DUAL_TINY_PROFILE
from dove_model.families.registry import family_spec

SMOKE_PARAMS: dict[str, Any] = {
    "data": {
        "source": "synth",
        "name": "synth",
        "path": "data/synth",
        "prepared_dir": "artifacts/prepared",
        "synth": {
            "n_images": 48,
            "seed": 0,
            "image_size": 64,
            "val_fraction": 0.2,
            "test_fraction": 0.25,
        },
    },
    "validate": {"report_dir": "reports/validation", "max_oov_rate": 1.0},
    "train": {
        "profile": "smoke",
        "out_dir": "artifacts/train",
        "cache_dir": ".cache/features",
        "device": "cpu",
        "profiles": {
            "smoke": {
                "epochs": 1,
                "batch_size": 16,
                "resize": 72,
                "crop": 64,
                "eval_size": 64,
                "amp": False,
                "model": {
                    "family": "dove",
                    "backbone": "tf_efficientnet_lite0",  # offline ImageNet weights
                    "pretrained": True,
                    "embed_dim": 64,
                    "word_dim": 32,
                    "vocab_min_freq": 1,
                },
            }
        },
    },
    "evaluate": {"out_file": "metrics.json", "chunk_size": 64, "two_stage_k": 5},
    "register": {"gates": {"min_metrics": {"mR": 0.0}, "max_regression": 100.0}},
    "index": {"out_dir": "artifacts/index", "batch_size": 16},
}

# ``write_smoke_project(dst, DUAL_SMOKE)``: the same project training the dual family instead
DUAL_SMOKE: dict[str, Any] = {
    "train": {
        "profile": "smoke-dual",
        # the family's tiny profile (offline Lite0 + MiniLM towers, cached features), 3 epochs
        "profiles": {"smoke-dual": {**deepcopy(DUAL_TINY_PROFILE), "epochs": 3}},
    }
}


CLIP_SMOKE_PROFILE = "smoke-clip"


def clip_smoke(project: Path, *, zero_shot: bool = True) -> dict[str, Any]:
    """``write_smoke_project(project, clip_smoke(project))``: the same project with the clip
    family's tiny random checkpoint (written under ``project/models``), zero-shot unless asked.
    Its files are named relative to the project, as a user's params.yaml names theirs: every
    orchestrator runs its tasks in the project folder."""
    project = Path(project)
    profile = family_spec("clip").tiny_profile(project / "models")
    model = dict(profile["model"], zero_shot=zero_shot)
    for key in ("clip_checkpoint", "clip_config"):
        model[key] = Path(model[key]).relative_to(project).as_posix()
    return {
        "train": {
            "profile": CLIP_SMOKE_PROFILE,
            "profiles": {CLIP_SMOKE_PROFILE: profile | {"model": model}},
        }
    }


def _replaces(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """A model of another family replaces the old model whole: their settings differ."""
    return "family" in new and new["family"] != old.get("family")


def smoke_params(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The smoke configuration with ``overrides`` merged in (nested dicts merge, except a
    model of another family, which replaces the model whole)."""
    merged = deepcopy(SMOKE_PARAMS)

    def merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
        for key, value in extra.items():
            old = into.get(key)
            if isinstance(value, dict) and isinstance(old, dict) and not _replaces(old, value):
                merge(into[key], value)
            else:
                into[key] = deepcopy(value)

    merge(merged, overrides or {})
    parse_params(merged, source="smoke params")  # fail early on a typo
    return merged


def write_smoke_project(dst: Path, overrides: dict[str, Any] | None = None) -> Path:
    """Write ``dst/params.yaml`` for a smoke run, every section spelled out (``dvc`` needs
    each section a stage lists); returns its path."""
    path = Path(dst) / "params.yaml"
    full = parse_params(smoke_params(overrides)).model_dump(mode="json", by_alias=True)
    write_text(path, yaml.safe_dump(full, sort_keys=False))
    return path
