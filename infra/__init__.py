"""Deployment tooling for DOVE-Ops: offline validation of the manifests, the KFP uploader."""
