"""Retrieval metrics and the evaluate stage."""
