"""The retrieval service's library side: search, input limits, metrics, model store, launch.

``service.py`` at the repository root is the BentoML service; it only wires these together.
"""
