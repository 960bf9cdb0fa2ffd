"""Data quality gates: derived columns (pandas/PIL) checked by Great Expectations suites."""
