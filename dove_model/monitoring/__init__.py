"""Monitoring a deployed model from its query log: drift of the query embeddings from the
training captions' (``drift``), the window of queries a figure covers (``window``), the
online proxies from feedback, and the daily HTML report with plots (``report``)."""
