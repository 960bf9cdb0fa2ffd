"""KFP v2 components, one per stage, and the pipeline that wires them.

Each component function is a thin shell over :mod:`dove_model.pipeline.steps`; KFP ships
its source into the project image (``pipeline.image``), so imports stay inside the body.
"""
