"""evaluate: recalls on the test split; the absolute floors decide whether to register."""

from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output


def evaluate(
    params_yaml: str,
    dataset: Input[Dataset],
    model: Input[Model],
    metrics: Output[Metrics],
    metrics_json: Output[Artifact],
) -> str:
    """Returns ``passed`` when every floor in register.gates.min_metrics is met.

    (A single unnamed return value: KFP's local runner resolves conditions only on those.)
    """
    from dove_model.pipeline.steps import evaluate_step

    return evaluate_step(params_yaml, dataset.path, model.path, metrics_json.path, metrics)
