"""deploy: the champion into the BentoML store and the gallery index built with it."""

from kfp.dsl import Artifact, Dataset, Input, Output


def deploy(params_yaml: str, dataset: Input[Dataset], index: Output[Artifact]) -> str:
    """Returns the BentoML model tag the service will serve."""
    from dove_model.pipeline.steps import deploy_step

    return deploy_step(params_yaml, dataset.path, index.path)
