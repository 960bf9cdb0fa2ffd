"""User-facing errors: the CLI prints them as one line and exits with code 2."""

from __future__ import annotations


class DoveError(Exception):
    """An error caused by the user's input or environment, not by a bug.

    The message must say what is wrong and name the file (and line) where there is one.
    """

    exit_code: int = 2


class DataFormatError(DoveError):
    """A dataset file that cannot be parsed."""


class ConfigError(DoveError):
    """params.yaml, a checkpoint or an index that does not fit this code."""


class GateFailed(DoveError):
    """A data or model quality gate failed; the pipeline must stop."""

    exit_code = 1
