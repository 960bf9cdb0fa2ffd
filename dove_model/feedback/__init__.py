"""The feedback loop: the query log, relevance feedback, and feedback becoming data.

Modules: ``records`` (what is logged), ``files`` and ``postgres`` (the two stores),
``writer`` (the background writer: never on a request's path), ``recent`` (the query ids
``/feedback`` accepts, and the online proxies), ``ratelimit``, ``loop`` (what the service
holds), ``export`` / ``expectations`` / ``leaks`` (feedback -> a new data version through the
Great Expectations gates), ``gate`` (the champion vs challenger check on the users' pairs).
"""
