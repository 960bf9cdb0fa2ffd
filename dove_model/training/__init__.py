"""What every family's training gets (``run.py``): seeding, resume, the time budget, early
stopping, the history, data parallelism under torchrun; plus the checkpoint, batch sampling,
the learning-rate schedule and the shared contrastive fine-tune."""
