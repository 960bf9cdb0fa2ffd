"""merge_index: the fan-in of the sharded deploy step (what deploy does, from shard folders)."""

from kfp.dsl import Artifact, Input, Output


def merge_index(params_yaml: str, shards: Input[list[Artifact]], index: Output[Artifact]) -> str:
    """Import the champion into the BentoML store and merge the shard folders into the index
    the service reads; returns the BentoML model tag (as deploy does)."""
    from dove_model.pipeline.steps import merge_index_step

    return merge_index_step(params_yaml, [s.path for s in shards], index.path)
