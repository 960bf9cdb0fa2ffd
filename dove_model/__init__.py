"""DOVE-Ops: remote sensing image-text retrieval with DOVE."""
