"""register: MLflow run + pyfunc, alias challenger; champion only if the gates pass."""

from kfp.dsl import Artifact, Dataset, Input, Model, Output


def register(
    params_yaml: str,
    dataset: Input[Dataset],
    model: Input[Model],
    metrics_json: Input[Artifact],
    validation: Input[Artifact],
    registration: Output[Artifact],
) -> str:
    """Always registers; returns the GateVerdict, ``passed`` when this version became champion.

    (A single unnamed return value: KFP's local runner resolves conditions only on those.)
    """
    from dove_model.pipeline.steps import register_step

    return register_step(
        params_yaml,
        dataset.path,
        model.path,
        metrics_json.path,
        validation.path,
        registration.path,
    )
