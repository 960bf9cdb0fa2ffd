"""Compile the KFP pipeline to YAML (committed as ``pipeline.compiled_file``)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from dove_model.atomic import atomic_path
from dove_model.config import Params


def compile_to_text(params: Params) -> str:
    """The compiled pipeline YAML for the current code, ``params.pipeline`` and the deploy
    step's fan-out (``params.index.shards``)."""
    from kfp import compiler

    from components.pipeline import build_pipeline

    with tempfile.TemporaryDirectory(prefix="dove-kfp-") as tmp:
        out = Path(tmp) / "pipeline.yaml"
        pipeline = build_pipeline(params.pipeline, shards=params.index.shards)
        compiler.Compiler().compile(pipeline, package_path=str(out))
        return out.read_text(encoding="utf-8")


def compile_pipeline(params: Params, out: Path) -> Path:
    text = compile_to_text(params)
    with atomic_path(out, suffix=".yaml") as tmp:
        tmp.write_text(text, encoding="utf-8")
    return out
