"""Builders for tests and benchmarks only (never imported by the product code paths):
small reproducible *data* — an untrained model directory, a deployed tiny archive, random
archives of any size, a smoke-sized training project,
the default dataset chained through prepare and the data gate. Services are always real."""
