"""KFP v2 components, one per stage, the pipeline that wires them, and ``dove pipeline``.

Each component function is a thin shell over :mod:`dove_model.pipeline.steps`; KFP ships
its source into the project image (``pipeline.image``), so imports stay inside the body.
``pipeline.py`` wires them, ``compile.py`` writes the YAML and ``cli.py`` is the
``dove pipeline`` command group (registered through the ``dove.commands`` entry point, so
the library never imports this package). Installed from the same wheel as ``dove_model``.
"""
