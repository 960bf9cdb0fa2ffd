"""evaluate: recalls on the test split; the absolute floors decide whether to register."""

from typing import NamedTuple

from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output


def evaluate(
    params_yaml: str,
    dataset: Input[Dataset],
    model: Input[Model],
    metrics: Output[Metrics],
    metrics_json: Output[Artifact],
) -> NamedTuple("EvaluateOutputs", [("gate", str), ("mR", float)]):
    from collections import namedtuple

    from dove_model.pipeline.steps import evaluate_step

    gate, mean_recall = evaluate_step(
        params_yaml, dataset.path, model.path, metrics_json.path, metrics
    )
    return namedtuple("EvaluateOutputs", ["gate", "mR"])(gate, mean_recall)
