"""evaluate: recalls on the test split, as KFP metrics and a JSON file for register."""

from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output


def evaluate(
    params_yaml: str,
    dataset: Input[Dataset],
    model: Input[Model],
    metrics: Output[Metrics],
    metrics_json: Output[Artifact],
) -> None:
    """Applies no gate: the register task decides (docs/pipeline.md, "Aliases and gates")."""
    from dove_model.pipeline.steps import evaluate_step

    evaluate_step(params_yaml, dataset.path, model.path, metrics_json.path, metrics)
