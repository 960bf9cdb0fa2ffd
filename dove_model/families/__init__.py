"""Model families as plug-ins: one folder per family, one line each in ``registry.py``, the
contract in ``spec.py`` and the one place that picks a family's code in ``dispatch.py``
(docs/architecture.md)."""
