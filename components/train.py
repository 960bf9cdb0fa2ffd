"""train: the active profile's model family on the prepared dataset; safetensors in the
Model artifact."""

from kfp.dsl import Dataset, Input, Model, Output


def train(params_yaml: str, dataset: Input[Dataset], model: Output[Model]) -> None:
    from dove_model.pipeline.steps import train_step

    train_step(params_yaml, dataset.path, model.path)
    model.metadata["format"] = "dove-model-dir/1"
