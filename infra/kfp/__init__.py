"""Kubeflow Pipelines: cluster placement for the compiled pipeline, upload and schedule."""
