"""The DOVE retraining pipeline: prepare -> validate -> train -> evaluate -> register -> deploy.

Components are built from the stage functions here with the project image, so the image is
configuration (``pipeline.image`` in params.yaml), read by the caller, not at import time.

The gate policy is the register stage's (docs/pipeline.md): register always runs and tags the
version challenger; only its verdict (promoted to champion or not) decides whether to deploy.
Nothing here compares a metric with a floor.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kfp import dsl

from components.deploy import deploy
from components.evaluate import evaluate
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


def build_pipeline(settings: PipelineParams, resources: TrainResources | None = None) -> Any:
    """The ``@dsl.pipeline`` function for ``settings`` (name and image)."""
    resources = resources or TrainResources()
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
            deployed = deploy_op(params_yaml=params_yaml, dataset=prepared.outputs["dataset"])
            deployed.set_display_name("deploy")
            deployed.set_caching_options(enable_caching=False)

    return dove_pipeline
