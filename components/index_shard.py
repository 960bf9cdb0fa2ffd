"""index_shard: one shard of the deploy step's index, encoded with the champion (fan-out)."""

from kfp.dsl import Artifact, Dataset, Input, Output


def index_shard(
    params_yaml: str,
    dataset: Input[Dataset],
    shard_index: int,
    shard_count: int,
    shard: Output[Artifact],
) -> None:
    """Encode shard ``shard_index``/``shard_count`` of the dataset's images (a shard folder)."""
    from dove_model.pipeline.steps import index_shard_step

    index_shard_step(params_yaml, dataset.path, shard_index, shard_count, shard.path)
