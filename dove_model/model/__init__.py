"""What the model families share: towers, preprocessing, dihedral views, the contrastive loss,
the model directory's common layout and the encoder contract. Each family's own model lives
in ``dove_model/families/<family>/`` (docs/architecture.md)."""
