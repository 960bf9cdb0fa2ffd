"""MLflow tracking, the DOVE pyfunc, recall gates and the registry aliases.

Submodules import MLflow lazily where they can; import the functions from here.
"""

from __future__ import annotations

from dove_model.registry.gates import GateDecision, check_gates
from dove_model.registry.promotion import (
    alias_state,
    champion_uri,
    download_champion,
    promote,
    rollback,
)
from dove_model.registry.register import RegistrationResult, register
from dove_model.registry.tracking import DataVersion, detect_data_version, resolve_tracking_uri

__all__ = [
    "DataVersion",
    "GateDecision",
    "RegistrationResult",
    "alias_state",
    "champion_uri",
    "check_gates",
    "detect_data_version",
    "download_champion",
    "promote",
    "register",
    "resolve_tracking_uri",
    "rollback",
]
