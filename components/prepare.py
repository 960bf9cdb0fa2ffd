"""prepare: import the configured source (synthetic default) into the canonical layout."""

from kfp.dsl import Dataset, Output


def prepare(params_yaml: str, data_version: str, dataset: Output[Dataset]) -> None:
    """``data_version`` is part of the cache key: a new data version never reuses a result."""
    from dove_model.pipeline.steps import prepare_step

    prepare_step(params_yaml, data_version, dataset.path)
    dataset.metadata["data_version"] = data_version
