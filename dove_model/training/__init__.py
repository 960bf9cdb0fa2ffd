"""Training DOVE: the ``train`` stage (single process, or DDP under torchrun)."""
