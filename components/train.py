"""train: the active profile's model family on the prepared dataset; safetensors in the
Model artifact, whose metadata names the family (the KFP UI tells the families apart)."""

from kfp.dsl import Dataset, Input, Model, Output


def train(params_yaml: str, dataset: Input[Dataset], model: Output[Model]) -> None:
    from dove_model.model.directory import model_family
    from dove_model.pipeline.steps import train_step

    model_dir = train_step(params_yaml, dataset.path, model.path)
    model.metadata["format"] = "dove-model-dir/1"
    model.metadata["family"] = model_family(model_dir)
