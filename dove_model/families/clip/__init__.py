"""The clip family: an open_clip checkpoint the user brings, zero-shot or fine-tuned."""
