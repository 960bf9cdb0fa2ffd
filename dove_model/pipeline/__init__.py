"""The KFP v2 pipeline: compile it, run it locally for real, or submit it to an endpoint.

The component definitions live in ``components/`` (thin shells); the work each one does is
in :mod:`dove_model.pipeline.steps`, which calls the same stage functions as DVC and Airflow.
"""
