"""The DOVE retraining pipeline: prepare -> validate -> train -> evaluate -> register -> deploy.

Components are built from the stage functions here with the project image, so the image is
configuration (``pipeline.image`` in params.yaml), read by the caller, not at import time.

The gate policy is the register stage's (docs/pipeline.md): register always runs and tags the
version challenger; only its verdict (promoted to champion or not) decides whether to deploy.
Nothing here compares a metric with a floor.

With ``shards`` > 1 (``index.shards`` in params.yaml, read at compile time: ``dsl.ParallelFor``
needs a static list) the deploy step fans out: one ``index_shard`` task per shard, then
``merge_index`` over the ``dsl.Collected`` shard folders does what deploy does after encoding.
With 1 (the default) it stays the single deploy task.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kfp import dsl

from components.deploy import deploy
from components.evaluate import evaluate
from components.index_shard import index_shard
from components.merge_index import merge_index
from components.prepare import prepare
from components.register import register
from components.train import train
from components.validate import validate
from dove_model.config import PipelineParams
from dove_model.registry.gates import GateVerdict


@dataclass(frozen=True)
class TrainResources:
    """What the train task asks the cluster for (a GPU plus CPU and memory)."""

    accelerator: str = "nvidia.com/gpu"
    accelerators: int = 1
    cpu_request: str = "4"
    cpu_limit: str = "8"
    memory_request: str = "16G"
    memory_limit: str = "32G"


@dataclass(frozen=True)
class ShardResources:
    """What each ``index_shard`` task asks for. The index encoder runs on the CPU today, so no
    accelerator by default; ``accelerator="nvidia.com/gpu"`` adds ``set_accelerator_type`` and
    a limit of one (platform.py's GPU toleration and node selector then place it)."""

    cpu_request: str = "2"
    cpu_limit: str = "4"
    memory_request: str = "8G"
    memory_limit: str = "16G"
    accelerator: str | None = None


def _component(func: Callable[..., Any], image: str) -> Any:
    return dsl.component(func, base_image=image, install_kfp_package=False)


def _place_train(task: Any, resources: TrainResources) -> None:
    """The train task: a GPU, CPU and memory, and two retries (it resumes from checkpoints)."""
    task.set_display_name("train")
    task.set_accelerator_type(resources.accelerator)
    task.set_accelerator_limit(resources.accelerators)
    task.set_cpu_request(resources.cpu_request).set_cpu_limit(resources.cpu_limit)
    task.set_memory_request(resources.memory_request)
    task.set_memory_limit(resources.memory_limit)
    task.set_retry(num_retries=2, backoff_duration="60s", backoff_factor=2.0)


def _place_shard(task: Any, resources: ShardResources) -> None:
    """A shard task: CPU and memory, a GPU only when asked, two retries of its own."""
    task.set_display_name("index-shard")
    task.set_cpu_request(resources.cpu_request).set_cpu_limit(resources.cpu_limit)
    task.set_memory_request(resources.memory_request)
    task.set_memory_limit(resources.memory_limit)
    if resources.accelerator:
        task.set_accelerator_type(resources.accelerator).set_accelerator_limit(1)
    task.set_retry(num_retries=2, backoff_duration="60s", backoff_factor=2.0)
    task.set_caching_options(enable_caching=False)


def _sharded_deploy(
    image: str, params_yaml: Any, dataset: Any, shards: int, resources: ShardResources
) -> Any:
    """The deploy step fanned out: ``shards`` index_shard tasks, then merge_index (fan-in)."""
    shard_op, merge_op = (_component(f, image) for f in (index_shard, merge_index))
    with dsl.ParallelFor(items=list(range(shards)), name="index-shards") as shard_index:
        shard = shard_op(
            params_yaml=params_yaml,
            dataset=dataset,
            shard_index=shard_index,
            shard_count=shards,
        )
        _place_shard(shard, resources)
    merged = merge_op(params_yaml=params_yaml, shards=dsl.Collected(shard.outputs["shard"]))
    merged.set_display_name("deploy")
    merged.set_caching_options(enable_caching=False)
    return merged


def build_pipeline(
    settings: PipelineParams,
    resources: TrainResources | None = None,
    *,
    shards: int = 1,
    shard_resources: ShardResources | None = None,
) -> Any:
    """The ``@dsl.pipeline`` function for ``settings`` (name and image); ``shards`` > 1 fans
    the deploy step out over that many index shards."""
    resources = resources or TrainResources()
    shard_resources = shard_resources or ShardResources()
    image = settings.image
    prepare_op, validate_op, train_op = (_component(f, image) for f in (prepare, validate, train))
    evaluate_op, register_op, deploy_op = (
        _component(f, image) for f in (evaluate, register, deploy)
    )

    @dsl.pipeline(
        name=settings.name,
        description="DOVE image-text retrieval: data gates, training, recall gates, registry.",
    )
    def dove_pipeline(data_version: str, params_yaml: str = "") -> None:
        """``data_version`` keys the cache; ``params_yaml`` (empty: the image's params.yaml)."""
        prepared = prepare_op(params_yaml=params_yaml, data_version=data_version)
        prepared.set_display_name("prepare")
        checked = validate_op(params_yaml=params_yaml, dataset=prepared.outputs["dataset"])
        checked.set_display_name("validate")
        trained = train_op(params_yaml=params_yaml, dataset=prepared.outputs["dataset"])
        trained.after(checked)
        _place_train(trained, resources)
        evaluated = evaluate_op(
            params_yaml=params_yaml,
            dataset=prepared.outputs["dataset"],
            model=trained.outputs["model"],
        )
        evaluated.set_display_name("evaluate")
        registered = register_op(
            params_yaml=params_yaml,
            dataset=prepared.outputs["dataset"],
            model=trained.outputs["model"],
            metrics_json=evaluated.outputs["metrics_json"],
            validation=checked.outputs["report_dir"],
        )
        registered.set_display_name("register")
        registered.set_caching_options(enable_caching=False)
        promoted = registered.outputs["Output"] == GateVerdict.PASSED.value
        with dsl.If(promoted, name="promoted-to-champion"):
            dataset = prepared.outputs["dataset"]
            if shards > 1:
                _sharded_deploy(image, params_yaml, dataset, shards, shard_resources)
            else:
                deployed = deploy_op(params_yaml=params_yaml, dataset=dataset)
                deployed.set_display_name("deploy")
                deployed.set_caching_options(enable_caching=False)

    return dove_pipeline
